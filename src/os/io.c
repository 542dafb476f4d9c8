/*
 * io.c — which I/O seam iqdb_open uses: the platform's, or one a test installed (the crash
 * simulator and the fault injector in tests/ replace it to lose unsynced writes or fail the Nth
 * call).
 */
#include <stdatomic.h>

#include "os/io.h"

static _Atomic(const iqdb__io *) override;

const iqdb__io *iqdb__io_default(void) {
    const iqdb__io *io = atomic_load(&override);
    return io ? io : iqdb__io_platform();
}

void iqdb__io_set_default(const iqdb__io *io) { atomic_store(&override, io); }
