/*
 * test_crc32c.c — CRC32C: the standard check value, and the hardware path (SSE4.2 / ARMv8, when
 * this CPU has it) equal to the table reference for every length 0..300 at every alignment 0..7
 * and for pieces fed one after another.
 */
#include "../common/testutil.h"

#include "persist/crc32c.h"

static void test_crc32c_check_value(void **state) {
    (void)state;
    assert_int_equal(iqdb__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(iqdb__crc32c_table(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(iqdb__crc32c(0, "", 0), 0);
    printf("implementation: %s\n", iqdb__crc32c_impl());
}

static void test_crc32c_paths_agree(void **state) {
    (void)state;
    uint8_t buf[320];
    iqdbt_rng r = {5};
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)iqdbt_next(&r);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 308; n++) {
            uint32_t want = iqdb__crc32c_table(0, buf + off, n);
            assert_int_equal(iqdb__crc32c(0, buf + off, n), want);
            size_t cut = n / 3; /* streaming: the result of one piece seeds the next */
            assert_int_equal(
                iqdb__crc32c(iqdb__crc32c(0, buf + off, cut), buf + off + cut, n - cut), want);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_crc32c_check_value),
                                       cmocka_unit_test(test_crc32c_paths_agree)};
    return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
