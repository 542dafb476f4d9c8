/*
 * iqdb.h — the public interface of iqdb, an embeddable vector database.
 *
 * This header is the specification. Every function states what it does, which status codes it
 * returns, who owns what, and its thread rule. Sentences written as contracts are pinned by the
 * tests in tests/unit.
 *
 * ---------------------------------------------------------------------------------------------
 * What iqdb is
 *
 *   A library, not a server: one handle (`iqdb *`) holds a set of records. A record is an id (a
 *   64-bit unsigned integer, or a byte-string key: see iqdb_upsert_key), a float vector of the
 * database's fixed dimension, and optional metadata (a flat map of string keys to null / bool /
 * int64 / double / string values). Search returns the k records nearest to a query vector,
 * optionally restricted by a metadata filter.
 *
 * Lifecycle
 *
 *   iqdb_options o;
 *   iqdb_options_init(&o, 128, IQDB_METRIC_COSINE);
 *   iqdb *db;
 *   if (iqdb_open(NULL, &o, &db) != IQDB_OK)           // NULL path: in memory
 *       fprintf(stderr, "%s\n", iqdb_errmsg(NULL));
 *   iqdb_upsert(db, 42, vec, NULL);
 *   iqdb_hit hits[10]; size_t n;
 *   iqdb_search(db, query, 10, NULL, hits, &n, NULL);
 *   iqdb_close(db);
 *
 * Errors
 *
 *   Every fallible function returns an int status: IQDB_OK (0) or a code below. Output
 *   parameters are written on every path (zero / NULL on failure). iqdb_errstr(rc) gives a static
 *   description of a code; iqdb_errmsg(db) gives the detail of the most recent failure on the
 *   calling thread (which key, which position in a filter, which dimension was expected).
 *   IQDB_IOERR and IQDB_CORRUPT may come back as extended codes (primary | n << 8) that name the
 *   failed operation; every other code is returned in primary form. IQDB_PRIMARY(rc) strips the
 *   extension. A failed call leaves the database exactly as it was.
 *
 * Ownership
 *
 *   Inputs are copied: iqdb never keeps a pointer the caller passed in. Results are written into
 *   arrays the caller provides with an explicit capacity; no pointer into the database escapes.
 *   Objects returned behind an opaque pointer (iqdb, iqdb_meta, iqdb_filter) have exactly one
 *   destructor, and every destructor accepts NULL.
 *
 * Threads
 *
 *   One handle may be shared by any number of threads. Each function ends its documentation
 *   with one of:
 *     Threads: shared     runs concurrently with every other shared call on the handle;
 *     Threads: exclusive  waits for, then excludes, every other call on the handle (writers are
 *                         not starved by a stream of readers);
 *     Threads: none       must not race with any other call on the same object (iqdb_close;
 *                         mutating a metadata or filter object).
 *   Metadata and filter objects may be read by many threads at once (a filter may be used by
 *   concurrent searches) but must not be modified while another thread reads them.
 *
 * Copyright (c) the iqdb developers. Licensed under Apache-2.0 OR MIT.
 */
#ifndef IQDB_H
#define IQDB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================ */
/* Export macro and version                                                                     */
/* ============================================================================================ */

#if defined(IQDB_STATIC_DEFINE)
#define IQDB_API
#elif defined(_WIN32)
#ifdef IQDB_BUILDING
#define IQDB_API __declspec(dllexport)
#else
#define IQDB_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define IQDB_API __attribute__((visibility("default")))
#else
#define IQDB_API
#endif

#define IQDB_VERSION_MAJOR 0
#define IQDB_VERSION_MINOR 1
#define IQDB_VERSION_PATCH 0
#define IQDB_VERSION_STRING "0.1.0"
/** MAJOR * 10000 + MINOR * 100 + PATCH. */
#define IQDB_VERSION_NUMBER \
    (IQDB_VERSION_MAJOR * 10000 + IQDB_VERSION_MINOR * 100 + IQDB_VERSION_PATCH)

/**
 * The version of the library actually linked, as "MAJOR.MINOR.PATCH". Compare with
 * IQDB_VERSION_STRING to detect a header / library mismatch. Static string.
 * Threads: shared. Since: 0.1.
 */
IQDB_API const char *iqdb_version(void);
/** The linked library's IQDB_VERSION_NUMBER. Threads: shared. Since: 0.1. */
IQDB_API uint32_t iqdb_version_number(void);

/** One open database. Opaque. */
typedef struct iqdb iqdb;

/* ============================================================================================ */
/* Status codes                                                                                 */
/* ============================================================================================ */

/** Status codes. Append-only: a code is never renumbered. */
enum iqdb_status {
    IQDB_OK = 0,           /**< success */
    IQDB_ERROR = 1,        /**< internal error (a bug: please report it) */
    IQDB_MISUSE = 2,       /**< the API was used against its contract (NULL handle, closed
                                handle, output pointer missing, struct_size unset) */
    IQDB_INVALID = 3,      /**< an argument is out of range or malformed: NaN/Inf in a vector,
                                bad option value, malformed filter text, too-deep filter, ... */
    IQDB_DIM = 4,          /**< a vector's dimension disagrees with the database's */
    IQDB_NOTFOUND = 5,     /**< the record or metadata key does not exist */
    IQDB_NOMEM = 6,        /**< an allocation failed; nothing was changed */
    IQDB_IOERR = 7,        /**< an operating-system I/O call failed (extended codes say which) */
    IQDB_FULL = 8,         /**< a hard capacity limit was reached (2^32 - 2 rows, key space) */
    IQDB_CORRUPT = 9,      /**< stored data failed a checksum or a structural check */
    IQDB_FORMAT = 10,      /**< a file is not an iqdb file, or has a newer format version */
    IQDB_MISMATCH = 11,    /**< the request disagrees with what is stored (dim, metric), or a
                                metadata value has another type than the getter asked for */
    IQDB_BUSY = 12,        /**< another process holds the database open for writing */
    IQDB_READONLY = 13,    /**< a write on a read-only handle */
    IQDB_FATAL = 14,       /**< an earlier fsync failed: the handle refuses writes until it is
                                reopened (reads keep working) */
    IQDB_UNSUPPORTED = 15, /**< the feature was not compiled in, or not available on this CPU /
                                platform */
    IQDB_INTERRUPTED = 16  /**< the call was cancelled: by iqdb_interrupt, by a progress
                                callback returning non-zero, or (async) by iqdb_future_cancel;
                                the database is unchanged */
};

/** The primary code of a possibly extended status. */
#define IQDB_PRIMARY(rc) ((rc)&0xff)

/** Extended IQDB_IOERR codes: which operating-system call failed (iqdb_errmsg has its errno). */
#define IQDB_IOERR_OPEN (IQDB_IOERR | (1 << 8))     /**< opening a file */
#define IQDB_IOERR_READ (IQDB_IOERR | (2 << 8))     /**< reading */
#define IQDB_IOERR_WRITE (IQDB_IOERR | (3 << 8))    /**< writing (also a failed close) */
#define IQDB_IOERR_FSYNC (IQDB_IOERR | (4 << 8))    /**< fsync of a file: see IQDB_FATAL */
#define IQDB_IOERR_TRUNCATE (IQDB_IOERR | (5 << 8)) /**< truncating */
#define IQDB_IOERR_RENAME (IQDB_IOERR | (6 << 8))   /**< renaming the new snapshot into place */
#define IQDB_IOERR_DELETE (IQDB_IOERR | (7 << 8))   /**< removing a file */
#define IQDB_IOERR_DIRSYNC (IQDB_IOERR | (8 << 8))  /**< fsync of the directory */
#define IQDB_IOERR_SIZE (IQDB_IOERR | (9 << 8))     /**< reading a file's size */
#define IQDB_IOERR_LOCK (IQDB_IOERR | (10 << 8))    /**< the lock call itself failed */
#define IQDB_IOERR_NOSPACE (IQDB_IOERR | (11 << 8)) /**< the disk (or quota) is full */
/** Mapping the vector file into memory failed (IQDB_VECTORS_IN_FILE). */
#define IQDB_IOERR_MMAP (IQDB_IOERR | (12 << 8))

/** Extended IQDB_CORRUPT codes: which file failed its checks. */
#define IQDB_CORRUPT_SNAPSHOT (IQDB_CORRUPT | (1 << 8)) /**< the snapshot file */
#define IQDB_CORRUPT_WAL (IQDB_CORRUPT | (2 << 8))      /**< the write-ahead log */

/**
 * A static, never-NULL English description of a status code (primary or extended); unknown
 * codes give "unknown status code".
 * Threads: shared. Since: 0.1.
 */
IQDB_API const char *iqdb_errstr(int rc);

/**
 * The detail message of the most recent failed call made by the calling thread on `db` (pass
 * NULL for calls that had no handle: iqdb_open, metadata and filter functions). If the thread's
 * most recent failure concerned another handle, returns "". The string lives in thread-local
 * storage and stays valid until the thread's next failing iqdb call. Never NULL.
 * Threads: shared. Since: 0.1.
 */
IQDB_API const char *iqdb_errmsg(const iqdb *db);

/* ============================================================================================ */
/* Basic types and enums                                                                        */
/* ============================================================================================ */

/** External record id. Every value, including 0 and UINT64_MAX, is a valid id. */
typedef uint64_t iqdb_id;

/**
 * Distance metrics. For every metric a smaller distance means nearer.
 *  L2       Euclidean distance sqrt(sum (a_i - b_i)^2).
 *  COSINE   1 - a.b / (|a| |b|), in [0, 2]; 1.0 when either vector is all zeros.
 *  DOT      -(a.b): larger inner products rank first; may be negative.
 *  L1       sum |a_i - b_i| (Manhattan).
 *  HAMMING  the number of components whose values differ (a_i != b_i; +0.0 equals -0.0); meant
 *           for 0/1 vectors, reported as a float.
 * A distance that overflows the float range is reported as +inf (never NaN).
 */
typedef enum iqdb_metric {
    IQDB_METRIC_DEFAULT = 0, /**< L2 */
    IQDB_METRIC_L2 = 1,
    IQDB_METRIC_COSINE = 2,
    IQDB_METRIC_DOT = 3,
    IQDB_METRIC_L1 = 4,
    IQDB_METRIC_HAMMING = 5
} iqdb_metric;

/** Index kinds. The index decides how a search finds candidates; the rows are the same. */
typedef enum iqdb_index_kind {
    IQDB_INDEX_DEFAULT = 0, /**< FLAT */
    IQDB_INDEX_FLAT = 1,    /**< exact scan over every row; always correct */
    IQDB_INDEX_HNSW = 2,    /**< approximate graph index (HNSW): see iqdb_options.hnsw */
    IQDB_INDEX_IVF = 3      /**< inverted lists: rows are partitioned around trained centroids and
                                 a search scans the lists nearest to the query (approximate) */
} iqdb_index_kind;

/**
 * Vector quantization: compact codes kept beside the full-precision rows. A search scans codes
 * to build a shortlist of k * oversample candidates, then re-ranks the shortlist against the
 * full-precision rows, so reported distances are exact; recall depends on the oversample
 * factor. Codes are trained with the index (see the IVF and quant notes in iqdb_options).
 * Memory: by default the codes are added to the full-precision vectors, which stay for
 * re-ranking and iqdb_get — quantization then speeds search but costs memory. With
 * IQDB_QUANT_CODES_ONLY the vectors are released once the codes are trained, and the codes
 * are all that remains (see there). iqdb_stats reports each component.
 */
typedef enum iqdb_quant {
    IQDB_QUANT_NONE = 0,   /**< no codes: full-precision scans */
    IQDB_QUANT_SQ8 = 1,    /**< 8-bit scalar quantization: 1 byte per dimension */
    IQDB_QUANT_BINARY = 2, /**< 1 bit per dimension (rounded up to 64-bit words) */
    IQDB_QUANT_PQ = 3      /**< product quantization: quant.pq_m bytes per vector; with IVF it
                                codes the residual from the list centroid */
} iqdb_quant;

/**
 * quant.flags: IQDB_QUANT_CODES_ONLY keeps only the codes (SQ8 or BINARY). Until the first
 * training the rows are stored in full; when the codes have been trained the full-precision
 * vectors are released and never stored again. From then on iqdb_get returns the decoded
 * vector (SQ8: every component within half a quantization step, per dimension (max - min) /
 * 255 of the training rows; BINARY: one of two values per dimension), every reported distance
 * is the metric between the query and the decoded vector, an exact search (params.exact) scans
 * every code, and retraining (automatic or iqdb_optimize) clusters the decoded vectors and
 * keeps the quantizer's parameters. PQ cannot be codes-only: its codes depend on the list
 * centroids and could not follow a retraining.
 */
#define IQDB_QUANT_CODES_ONLY 1u

/** SIMD levels for the distance kernels. */
typedef enum iqdb_simd {
    IQDB_SIMD_AUTO = 0,   /**< the best level this CPU supports */
    IQDB_SIMD_SCALAR = 1, /**< portable C, the reference */
    IQDB_SIMD_AVX2 = 2,   /**< x86-64 AVX2 + FMA */
    IQDB_SIMD_AVX512 = 3, /**< x86-64 AVX-512F */
    IQDB_SIMD_NEON = 4    /**< AArch64 NEON */
} iqdb_simd;

/**
 * 1 if `level` was compiled in and this CPU can run it, else 0 (IQDB_SIMD_AUTO gives 1).
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_simd_available(iqdb_simd level);
/** "auto", "scalar", "avx2", "avx512", "neon" or "unknown". Static. Threads: shared. */
IQDB_API const char *iqdb_simd_name(iqdb_simd level);

/**
 * When a write's WAL record is made durable (fsync) — what a power loss can cost. See the
 * Durability section of docs/guide.md. A process crash (the program dies, the machine keeps
 * running) loses nothing that was acknowledged under any policy: the record is in the operating
 * system's cache once the call returns.
 *  ALWAYS    a write returns only after its record is on disk (concurrent writers share one
 *            fsync: group commit). A power loss loses no acknowledged write. The D of ACID.
 *  PERIODIC  writes return once the record is written to the OS; a background thread fsyncs
 *            every sync_period_ms. A power loss loses at most the writes of the last period.
 *  NEVER     iqdb never fsyncs the WAL (checkpoints still fsync the snapshot). A power loss
 *            loses the writes since the last checkpoint the OS had not yet flushed.
 * Under every policy a crash leaves the database at a prefix of the writes (no gap, nothing
 * invented, batches whole): atomicity and consistency never depend on the policy.
 */
typedef enum iqdb_sync {
    IQDB_SYNC_DEFAULT = 0, /**< ALWAYS */
    IQDB_SYNC_ALWAYS = 1,
    IQDB_SYNC_PERIODIC = 2,
    IQDB_SYNC_NEVER = 3
} iqdb_sync;

/**
 * Snapshot compression. The WAL is never compressed. A codec not compiled into this build
 * (see iqdb_compression_available) is IQDB_UNSUPPORTED at open, for writing and for reading.
 */
typedef enum iqdb_compression {
    IQDB_COMPRESS_DEFAULT = 0, /**< NONE */
    IQDB_COMPRESS_NONE = 1,
    IQDB_COMPRESS_ZSTD = 2, /**< levels 1..22, default 3 */
    IQDB_COMPRESS_LZ4 = 3   /**< level 1 = fast (default), 2..12 = LZ4HC */
} iqdb_compression;

/** 1 if snapshots can be written and read with `c` in this build. Threads: shared. Since: 0.1. */
IQDB_API int iqdb_compression_available(iqdb_compression c);

/* ============================================================================================ */
/* Allocator hooks                                                                              */
/* ============================================================================================ */

/**
 * A caller-supplied allocator. Every byte iqdb allocates for a handle (and for a metadata or
 * filter object) goes through the allocator it was created with; nothing bypasses it.
 * All three functions NULL means the C library's malloc / realloc / free.
 *  alloc_fn(ud, size)                  returns memory aligned for any type, or NULL.
 *  realloc_fn(ud, ptr, old_size, size) may be NULL: iqdb then uses alloc + copy + free.
 *  free_fn(ud, ptr, size)              size is the size the block was allocated with; ptr is
 *                                      never NULL.
 * The hooks may be called from several threads at once (searches on a shared handle keep
 * per-thread scratch) and must be thread-safe if the handle is shared.
 */
typedef struct iqdb_allocator {
    void *(*alloc_fn)(void *ud, size_t size);
    void *(*realloc_fn)(void *ud, void *ptr, size_t old_size, size_t size);
    void (*free_fn)(void *ud, void *ptr, size_t size);
    void *ud;
} iqdb_allocator;

/* ============================================================================================ */
/* Result cache, logging, progress (types used by the options)                                  */
/* ============================================================================================ */

/**
 * Eviction policies of the result cache (docs/guide.md, "Result cache").
 *  LRU   evicts the result used least recently.
 *  LFU   evicts the result used least often (ties: the least recently used of them).
 *  FIFO  evicts the result cached first; hits do not refresh it.
 *  ARC   adaptive replacement (Megiddo and Modha): balances recency and frequency with two
 *        lists and two "ghost" lists of recently evicted keys (ghosts hold only a hash).
 */
typedef enum iqdb_cache_policy {
    IQDB_CACHE_DEFAULT = 0, /**< LRU */
    IQDB_CACHE_LRU = 1,
    IQDB_CACHE_LFU = 2,
    IQDB_CACHE_FIFO = 3,
    IQDB_CACHE_ARC = 4
} iqdb_cache_policy;

/** Log levels: a message is passed to the log callback when its level <= options.log_level. */
typedef enum iqdb_log_level {
    IQDB_LOG_DEFAULT = 0, /**< INFO */
    IQDB_LOG_ERROR = 1,   /**< a failure the caller may not see as a return code (a failed
                               background fsync or automatic checkpoint) */
    IQDB_LOG_WARN = 2,    /**< something was refused or cut short (a torn WAL tail) */
    IQDB_LOG_INFO = 3,    /**< open, recovery, checkpoints, interrupts */
    IQDB_LOG_DEBUG = 4    /**< configuration details */
} iqdb_log_level;

/**
 * A log callback: `msg` is a NUL-terminated line without a newline, valid during the call only.
 * Called on whichever thread does the work (possibly several at once; possibly with the handle's
 * lock held): it must be thread-safe, must be quick, and must not call iqdb on the same handle.
 */
typedef void (*iqdb_log_fn)(void *ud, iqdb_log_level level, const char *msg);

/** What a progress callback reports on. Append-only. */
typedef enum iqdb_progress_op {
    IQDB_PROGRESS_CHECKPOINT = 1,   /**< writing a snapshot: units are bytes (total estimated) */
    IQDB_PROGRESS_IMPORT = 2,       /**< iqdb_upsert_batch: units are records */
    IQDB_PROGRESS_SEARCH_BATCH = 3, /**< iqdb_search_batch: units are queries */
    IQDB_PROGRESS_BUILD = 4,        /**< the index build of an iqdb_upsert_batch (HNSW: units
                                         are nodes linked, a report per 256) or the automatic
                                         IVF training after a write (units are steps: 10
                                         k-means iterations, then centroids, quantizer and
                                         assignment, total 13) */
    IQDB_PROGRESS_OPTIMIZE = 5      /**< iqdb_optimize: HNSW nodes linked (per 256) or IVF
                                         training steps, as for IQDB_PROGRESS_BUILD */
} iqdb_progress_op;

/**
 * A progress callback, called from long calls every so often (at least once per MiB of snapshot,
 * per 1024 imported records, per 2048 batch queries, per 256 HNSW nodes linked, per IVF training
 * step) with done <= total; done never goes backwards within one op of one call (one call may
 * report two ops: an iqdb_upsert_batch reports IMPORT, then BUILD). Returning non-zero cancels
 * the call: it returns IQDB_INTERRUPTED and the records are exactly as before it. One
 * exception: an automatic IVF training (BUILD after a write) that is cancelled is skipped —
 * the write itself has been applied and returns IQDB_OK; the training runs again after about
 * 25 % more rows, or at iqdb_optimize. An interrupted HNSW batch into a non-empty graph leaves
 * as deleted nodes do: their neighbours' lists are repaired, so the graph holds the same nodes
 * as before but not necessarily the same edges. Same thread rules as iqdb_log_fn.
 */
typedef int (*iqdb_progress_fn)(void *ud, iqdb_progress_op op, uint64_t done, uint64_t total);

/* ============================================================================================ */
/* Options                                                                                      */
/* ============================================================================================ */

/** Limits. */
#define IQDB_MAX_DIM 65536u            /**< largest vector dimension */
#define IQDB_MAX_THREADS 256u          /**< largest worker-thread count */
#define IQDB_MAX_KEY_LEN 255u          /**< longest metadata key, in bytes */
#define IQDB_MAX_META_ENTRIES 1024u    /**< most keys in one record's metadata */
#define IQDB_MAX_STRING_LEN (1u << 20) /**< longest metadata string value, in bytes */
#define IQDB_MAX_FILTER_DEPTH 64u      /**< deepest nesting of AND / OR / NOT in a filter */
#define IQDB_MAX_FILTER_IN 1024u       /**< most values in one IN list */
#define IQDB_MAX_ID_KEY_LEN 4096u      /**< longest byte key naming a record (iqdb_upsert_key) */
#define IQDB_MAX_OVERSAMPLE 1024u      /**< largest re-ranking oversample factor */

/**
 * options.flags: IQDB_VECTORS_IN_FILE keeps the full-precision vectors in a file mapped into
 * memory instead of on the handle's heap. Everything else stays in memory as usual (ids,
 * metadata, the index, quantized codes), every call behaves exactly as without the flag (same
 * results, bit for bit), and the file format does not change: the flag belongs to the handle,
 * not the database, and may differ from one open to the next.
 *
 * What it is for: with a quantizer (quant.kind SQ8 or BINARY, any index) a search scans codes
 * and touches full-precision vectors only to re-rank its shortlist, so the heap holds little more
 * than the codes (SQ8 at dim 784: 28-30 % of the float vectors) while results are re-ranked
 * exactly. The vectors live in the kernel's page cache: pages a search touches are read in (and
 * stay while memory allows); under memory pressure the kernel writes them to the file and drops
 * them instead of the process running out of memory. Without a quantizer a flat scan reads every
 * vector, so the pages are all touched (but still not on the heap).
 *
 * The file is "<path>.vec" beside the database, created (or truncated) at open and filled from
 * the snapshot and the WAL; it is never synced and holds nothing recovery needs (POSIX: it is
 * unlinked at once and lives only as long as the handle; Windows: delete-on-close). It needs as
 * much disk space as the vectors (dim rounded up to 16 floats per row, plus free slots); a full
 * disk is IQDB_IOERR_NOSPACE from the write that needed the room. stats.mem_vectors then counts
 * only heap bytes and stats.mapped_vectors the file's. Needs a path and a writable handle:
 * IQDB_INVALID in memory, IQDB_UNSUPPORTED with read_only. (IQDB_QUANT_CODES_ONLY keeps no
 * vectors at all, and is in memory only.)
 */
#define IQDB_VECTORS_IN_FILE 1u

/**
 * Options for iqdb_open. Zero means "the default" for every field, so
 *     iqdb_options o; iqdb_options_init(&o, dim, metric);
 * is a complete configuration. `struct_size` lets the library and the caller disagree on the
 * struct's size across versions: the library reads only the fields the caller's size covers and
 * uses defaults for the rest; a larger struct than the library knows must have zero bytes past
 * the library's end.
 */
typedef struct iqdb_options {
    size_t struct_size;       /**< sizeof(iqdb_options), set by iqdb_options_init */
    uint32_t dim;             /**< vector dimension, 1 .. IQDB_MAX_DIM (required) */
    iqdb_metric metric;       /**< distance metric (default L2) */
    iqdb_index_kind index;    /**< index kind (default FLAT) */
    iqdb_simd simd;           /**< force a kernel level; AUTO also honours the IQDB_SIMD
                                   environment variable ("scalar", "avx2", "avx512", "neon") */
    uint32_t threads;         /**< worker threads for batch calls, 1 .. IQDB_MAX_THREADS;
                                   0 = the number of online CPUs */
    uint32_t flags;           /**< 0 or IQDB_VECTORS_IN_FILE */
    iqdb_allocator allocator; /**< all zero = the C library */
    /**
     * HNSW parameters (used when index = IQDB_INDEX_HNSW). More links (m) and larger candidate
     * lists (ef_*) give better recall for more memory and time; see docs/guide.md.
     */
    struct {
        uint32_t m;               /**< links per node on upper layers (2m on layer 0), 2..128;
                                       default 16. Memory: about 8m + 30 bytes per record */
        uint32_t ef_construction; /**< candidate list size while building, >= m; default 200 */
        uint32_t ef_search;       /**< candidate list size while searching (at least k is
                                       used); default 64; iqdb_search_params.ef overrides it */
        uint32_t filter_widen;    /**< largest candidate list multiplier for an in-graph
                                       filtered search (applied as the filter gets more
                                       selective, up to this factor); default 4 */
        uint64_t seed;            /**< level generator seed; 0 = the fixed default seed. A
                                       build on one thread is reproducible for a given seed
                                       and insertion order */
    } hnsw;
    /**
     * IVF parameters (used when index = IQDB_INDEX_IVF).
     *
     * Training: the index trains itself (k-means++ then Lloyd iterations on a sample, in the
     * metric's own geometry: spherical k-means for cosine and dot, k-medians for L1 and
     * Hamming) when the database first holds enough rows (1024, or 8 per list with a fixed
     * n_lists), and trains again whenever the row count has grown 4x since the last training
     * (the write that crosses the mark pays for it). Until then searches are exact scans —
     * never an error. Between trainings new rows go to their nearest list. iqdb_optimize
     * retrains on demand.
     */
    struct {
        uint32_t n_lists;      /**< number of lists, 0 .. 2^20; 0 = chosen from the data size at
                                    each training (about 4 sqrt(rows)) */
        uint32_t n_probes;     /**< lists scanned per query; default 8 (<= n_lists when set) */
        uint32_t train_sample; /**< most vectors sampled for k-means; default 65536 */
        uint32_t reserved;     /**< must be 0 */
    } ivf;
    /* Durability: used when iqdb_open is given a path (see docs/guide.md, "Durability"). */
    iqdb_sync sync;               /**< when WAL records are fsynced; default ALWAYS */
    uint32_t sync_period_ms;      /**< PERIODIC: fsync at most this long after a write,
                                       1 .. 3,600,000; 0 = 1000 */
    iqdb_compression compression; /**< codec of the snapshots this handle writes; default
                                       NONE (reading handles whatever the file holds) */
    int32_t compression_level;    /**< 0 = the codec's default; see iqdb_compression */
    uint64_t checkpoint_bytes;    /**< checkpoint automatically once the WAL grows past this
                                       many bytes; 0 = 64 MiB; UINT64_MAX = never */
    uint32_t read_only;           /**< non-zero: open an existing database for reading only:
                                       no lock, no file is changed, writes get IQDB_READONLY */
    uint32_t durability_reserved; /**< must be 0 */
    /* Result cache (docs/guide.md, "Result cache"). Off unless cache_entries > 0. */
    uint32_t cache_entries;         /**< most cached results, 1 .. 1,048,576; 0 = no cache */
    iqdb_cache_policy cache_policy; /**< eviction policy; default LRU */
    uint64_t cache_bytes;           /**< most bytes the cached results may hold (queries, hits,
                                         filters, bookkeeping); 0 = no byte limit */
    uint32_t cache_ttl_ms;          /**< a result older than this is recomputed; 0 = never */
    uint32_t cache_reserved;        /**< must be 0 */
    /* Observability (docs/guide.md, "Observability"). */
    iqdb_log_fn log_fn;           /**< NULL = silent (the default) */
    void *log_ud;                 /**< passed to log_fn */
    iqdb_log_level log_level;     /**< most verbose level passed on; default INFO */
    iqdb_progress_fn progress_fn; /**< NULL = no progress reports */
    void *progress_ud;            /**< passed to progress_fn */
    /**
     * Quantization (IQDB_INDEX_FLAT and IQDB_INDEX_IVF: every kind; IQDB_INDEX_HNSW: SQ8 and
     * BINARY, PQ is IQDB_UNSUPPORTED). A flat index with a quantizer scans every code and
     * re-ranks a shortlist; it trains like IVF (above). Until trained, searches are exact.
     * HNSW: the write that brings the database to 1,024 rows trains the quantizer on every row
     * before it links the new ones; from then on the graph computes every distance (inserts
     * and searches) between a float query and a code, and of the walk's max(ef, k) results
     * the best k * oversample are re-ranked against the rows (codes only: the decoded codes).
     * SQ8 keeps ef (a walk narrower than k * oversample re-ranks all it found); BINARY widens
     * the walk to k * oversample (one-bit codes need the longer shortlist). While
     * the rows are stored it retrains after each 4-fold growth; iqdb_optimize retrains and
     * rebuilds. Before training the graph uses the rows (searches are approximate as usual).
     */
    struct {
        iqdb_quant kind;     /**< default NONE */
        uint32_t pq_m;       /**< PQ: subspaces = bytes per code, 1 .. dim; 0 = dim / 4 */
        uint32_t oversample; /**< default shortlist factor, 1 .. IQDB_MAX_OVERSAMPLE; 0 = the
                                  kind's default (SQ8 4, PQ 8, BINARY 16) */
        uint32_t flags;      /**< 0 or IQDB_QUANT_CODES_ONLY */
    } quant;
} iqdb_options;

/**
 * Fills `o` with defaults for a database of dimension `dim` and metric `metric`. Inline, so
 * struct_size is the size the caller was compiled with.
 * Threads: none (on `o`). Since: 0.1.
 */
static inline void iqdb_options_init(iqdb_options *o, uint32_t dim, iqdb_metric metric) {
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->dim = dim;
    o->metric = metric;
}

/* ============================================================================================ */
/* Open and close                                                                               */
/* ============================================================================================ */

/**
 * Opens a database. `path` NULL opens an in-memory database that lives until iqdb_close.
 *
 * A path names a durable database: the snapshot file `path`, the write-ahead log `path.wal`
 * beside it, and during a checkpoint `path.tmp` (formats: docs/FORMAT.md). The directory must
 * exist. A missing database is created (an empty snapshot is written and synced before iqdb_open
 * returns). An existing one is recovered: its snapshot is loaded — rows, metadata and the
 * index's own structures, so nothing is rebuilt — and the WAL records after it are replayed. A
 * torn WAL tail left by a crash is cut off on disk. The dimension and metric must equal the
 * stored ones (IQDB_MISMATCH); the index kind and its parameters are taken from the file, and
 * those of `opts` are ignored. A handle that opens for writing holds an exclusive lock on the
 * WAL until iqdb_close: another open for writing, in this process or another, gets IQDB_BUSY.
 *
 * On success *out is the new handle. On failure *out is NULL, nothing is left open or
 * allocated, and iqdb_errmsg(NULL) explains.
 * Returns IQDB_OK; IQDB_MISUSE (opts or out NULL, opts->struct_size smaller than the fields up
 * to `metric`); IQDB_INVALID (dim 0 or > IQDB_MAX_DIM, unknown metric / index / simd / quant
 * value, threads > IQDB_MAX_THREADS, an HNSW, IVF or quant parameter out of range, flags or a
 * reserved field != 0, an allocator with alloc set but free missing or the reverse, an unknown
 * sync policy or compression, a period or level out of range, an empty path, cache_entries >
 * 1,048,576, an unknown cache policy or log level, cache_reserved != 0); IQDB_UNSUPPORTED (a
 * SIMD level this CPU cannot run was forced by option or by IQDB_SIMD; a PQ quantizer with the
 * HNSW index (SQ8 and BINARY work); IQDB_QUANT_CODES_ONLY with a path (codes-only databases are
 * in memory only for now); a compression not compiled in, asked for or found in the file; a
 * larger options struct with non-zero bytes this library does not know); IQDB_NOMEM; and for a
 * path: IQDB_NOTFOUND (read_only and no database), IQDB_BUSY, IQDB_MISMATCH, IQDB_FORMAT (not an
 * iqdb file, or a newer format version), IQDB_CORRUPT_SNAPSHOT / IQDB_CORRUPT_WAL (a checksum or
 * structural check failed — for IVF and quantized indexes also any inconsistent centroid, list,
 * quantizer parameter or code; a
 * damaged WAL record that a later record proves had been synced is corruption, never skipped;
 * damage with no such proof is a torn tail from a crash and is cut off: docs/FORMAT.md, rule 4),
 * IQDB_IOERR_* (the extended code names the failed call).
 * Threads: shared (each call makes a new handle). Since: 0.1.
 */
IQDB_API int iqdb_open(const char *path, const iqdb_options *opts, iqdb **out);

/**
 * Closes the handle and frees everything it owns. A durable handle first checkpoints (unless it
 * is read-only, fatal, or nothing was written since the last checkpoint), then stops its sync
 * thread, releases the lock and closes its files. The handle is freed whatever happens; the
 * return value says whether the final checkpoint succeeded (when it did not, the WAL still
 * holds every acknowledged write and the next open replays it). NULL is a no-op returning
 * IQDB_OK.
 * Returns IQDB_OK; IQDB_FATAL (the handle had failed an fsync: nothing more was written);
 * IQDB_IOERR_* or IQDB_NOMEM from the checkpoint; IQDB_INTERRUPTED (the progress callback
 * stopped the final checkpoint: the WAL still holds every write and the next open replays it).
 * Threads: none — no other call on `db` may run during or after it. Since: 0.1.
 */
IQDB_API int iqdb_close(iqdb *db);

/**
 * Folds the WAL into a new snapshot: writes the whole database to `path.tmp`, fsyncs it, renames
 * it over the snapshot, fsyncs the directory, then resets the WAL. Searches continue meanwhile;
 * writes wait. A failure before the rename leaves the old snapshot and WAL in charge and the
 * handle usable; a failed fsync of the directory makes the handle fatal (IQDB_FATAL for later
 * writes). Checkpoints also run automatically when the WAL passes options.checkpoint_bytes, and
 * at iqdb_close. An in-memory handle has nothing to do and returns IQDB_OK.
 * Returns IQDB_OK; IQDB_MISUSE; IQDB_READONLY; IQDB_FATAL; IQDB_NOMEM; IQDB_IOERR_*;
 * IQDB_INTERRUPTED (options.progress_fn or iqdb_interrupt stopped it: the temp file is removed
 * and the old snapshot and the WAL stay in charge, as if it had not run).
 * Threads: exclusive for writers, shared for searches. Since: 0.1.
 */
IQDB_API int iqdb_checkpoint(iqdb *db);

/* ============================================================================================ */
/* Metadata                                                                                     */
/* ============================================================================================ */

/** Metadata value types. */
typedef enum iqdb_type {
    IQDB_TYPE_NULL = 0,
    IQDB_TYPE_BOOL = 1,
    IQDB_TYPE_INT = 2,    /**< int64 */
    IQDB_TYPE_DOUBLE = 3, /**< finite or infinite double; NaN is rejected */
    IQDB_TYPE_STRING = 4  /**< bytes with a length; may contain any byte, including 0 */
} iqdb_type;

/**
 * A metadata value. Strings are (ptr, len) pairs; iqdb copies them when it stores a value. A
 * value read back from a metadata object points into that object and is valid until the object
 * is modified or destroyed.
 */
typedef struct iqdb_value {
    iqdb_type type;
    union {
        int b;     /**< BOOL: 0 or 1 */
        int64_t i; /**< INT */
        double d;  /**< DOUBLE */
        struct {
            const char *ptr;
            size_t len;
        } s; /**< STRING */
    } u;
} iqdb_value;

/** Value constructors (inline; no allocation). */
static inline iqdb_value iqdb_null(void) {
    iqdb_value v = {IQDB_TYPE_NULL, {0}};
    return v;
}
static inline iqdb_value iqdb_bool(int b) {
    iqdb_value v = {IQDB_TYPE_BOOL, {0}};
    v.u.b = b != 0;
    return v;
}
static inline iqdb_value iqdb_int(int64_t i) {
    iqdb_value v = {IQDB_TYPE_INT, {0}};
    v.u.i = i;
    return v;
}
static inline iqdb_value iqdb_double(double d) {
    iqdb_value v = {IQDB_TYPE_DOUBLE, {0}};
    v.u.d = d;
    return v;
}
/** A string value of `len` bytes at `ptr`. */
static inline iqdb_value iqdb_strn(const char *ptr, size_t len) {
    iqdb_value v = {IQDB_TYPE_STRING, {0}};
    v.u.s.ptr = ptr;
    v.u.s.len = len;
    return v;
}
/** A string value from a NUL-terminated C string (NULL gives the empty string). */
static inline iqdb_value iqdb_str(const char *s) {
    size_t n = 0;
    if (s)
        while (s[n]) n++;
    return iqdb_strn(s ? s : "", n);
}

/**
 * A record's metadata: a map from keys (NUL-terminated, 1 .. IQDB_MAX_KEY_LEN bytes) to values,
 * at most IQDB_MAX_META_ENTRIES entries, kept sorted by key bytes. Opaque.
 */
typedef struct iqdb_meta iqdb_meta;

/**
 * Creates an empty metadata object. `alloc` NULL (or all-zero) means the C library allocator;
 * the object keeps a copy of the allocator for its whole life.
 * Returns IQDB_OK; IQDB_MISUSE (out NULL); IQDB_INVALID (allocator half set); IQDB_NOMEM.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_meta_create(const iqdb_allocator *alloc, iqdb_meta **out);

/** Frees a metadata object; NULL is a no-op. Threads: none (on `m`). Since: 0.1. */
IQDB_API void iqdb_meta_destroy(iqdb_meta *m);

/**
 * Sets `key` to a copy of `*v`, replacing any existing value for the key.
 * Returns IQDB_OK; IQDB_MISUSE (m, key or v NULL); IQDB_INVALID (empty key or longer than
 * IQDB_MAX_KEY_LEN; unknown type; NaN double; string longer than IQDB_MAX_STRING_LEN or with a
 * NULL ptr and non-zero len; a new key when IQDB_MAX_META_ENTRIES are already set);
 * IQDB_NOMEM. On failure `m` is unchanged.
 * Threads: none (on `m`). Since: 0.1.
 */
IQDB_API int iqdb_meta_set(iqdb_meta *m, const char *key, iqdb_value v);
/** Shorthands for iqdb_meta_set with the matching constructor. Same codes. */
IQDB_API int iqdb_meta_set_null(iqdb_meta *m, const char *key);
IQDB_API int iqdb_meta_set_bool(iqdb_meta *m, const char *key, int b);
IQDB_API int iqdb_meta_set_int(iqdb_meta *m, const char *key, int64_t i);
IQDB_API int iqdb_meta_set_double(iqdb_meta *m, const char *key, double d);
IQDB_API int iqdb_meta_set_string(iqdb_meta *m, const char *key, const char *s);

/**
 * Removes `key`. *existed (may be NULL) says whether it was there. Returns IQDB_OK or
 * IQDB_MISUSE. Threads: none (on `m`). Since: 0.1.
 */
IQDB_API int iqdb_meta_remove(iqdb_meta *m, const char *key, int *existed);

/** Number of entries; 0 for NULL. Threads: shared. Since: 0.1. */
IQDB_API size_t iqdb_meta_count(const iqdb_meta *m);

/**
 * The i-th entry in key order. *key points into `m` (valid until `m` changes).
 * Returns IQDB_OK; IQDB_MISUSE (NULL argument); IQDB_NOTFOUND (i >= count).
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_meta_at(const iqdb_meta *m, size_t i, const char **key, iqdb_value *v);

/**
 * Looks up `key`. Returns IQDB_OK; IQDB_MISUSE (NULL argument); IQDB_NOTFOUND (absent key).
 * On failure *v is a NULL-type value. Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_meta_get(const iqdb_meta *m, const char *key, iqdb_value *v);

/**
 * Typed getters: as iqdb_meta_get, and IQDB_MISMATCH when the stored value has another type
 * (iqdb_meta_get_double also accepts an INT value and converts it). For strings, *s points into
 * `m` and *len (may be NULL) receives the length; the bytes are NUL-terminated for convenience.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_meta_get_bool(const iqdb_meta *m, const char *key, int *b);
IQDB_API int iqdb_meta_get_int(const iqdb_meta *m, const char *key, int64_t *i);
IQDB_API int iqdb_meta_get_double(const iqdb_meta *m, const char *key, double *d);
IQDB_API int iqdb_meta_get_string(const iqdb_meta *m, const char *key, const char **s, size_t *len);

/* ============================================================================================ */
/* Filters                                                                                      */
/* ============================================================================================ */

/**
 * A metadata filter: a tree of comparisons combined with AND / OR / NOT. Semantics (pinned by
 * tests):
 *  - Closed world: a comparison on a key the record does not have is false. So `ne` on an absent
 *    key is false, while NOT(eq) on it is true. A record without metadata fails every comparison.
 *  - Types: INT and DOUBLE compare numerically with each other (2 = 2.0, 3 < 3.5; exact, also
 *    beyond 2^53). STRING compares by bytes (memcmp order, shorter prefix first). BOOL supports
 *    eq / ne / in, and orders false < true. NULL equals only NULL, and lt/le/gt/ge on NULL is
 *    false. A comparison between other type pairs is false (`ne` too: ne means "present, of a
 *    comparable type, and different").
 *  - IN(key, values): true when the key is present and equals one of the values.
 *  - EXISTS(key): true when the key is present (with any value, null included).
 *  - AND of zero children is true; OR of zero children is false.
 *  - Nesting of AND / OR / NOT is at most IQDB_MAX_FILTER_DEPTH deep; an IN list holds at most
 *    IQDB_MAX_FILTER_IN values. Larger filters are refused with IQDB_INVALID when they are built.
 * A filter is immutable once built and may be used by any number of concurrent searches.
 */
typedef struct iqdb_filter iqdb_filter;

/** Comparison operators. */
typedef enum iqdb_op {
    IQDB_OP_EQ = 1,
    IQDB_OP_NE = 2,
    IQDB_OP_LT = 3,
    IQDB_OP_LE = 4,
    IQDB_OP_GT = 5,
    IQDB_OP_GE = 6
} iqdb_op;

/**
 * A comparison leaf `key op value`. `alloc` NULL means the C library allocator; the filter keeps
 * a copy of it, and combinators use their children's.
 * Returns IQDB_OK; IQDB_MISUSE (key or out NULL); IQDB_INVALID (bad key, unknown op or type,
 * NaN double, string too long); IQDB_NOMEM. *out is NULL on failure.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_filter_cmp(const iqdb_allocator *alloc, const char *key, iqdb_op op, iqdb_value v,
                             iqdb_filter **out);
/** Shorthands for iqdb_filter_cmp. Same codes. */
IQDB_API int iqdb_filter_eq(const iqdb_allocator *alloc, const char *key, iqdb_value v,
                            iqdb_filter **out);
IQDB_API int iqdb_filter_ne(const iqdb_allocator *alloc, const char *key, iqdb_value v,
                            iqdb_filter **out);
IQDB_API int iqdb_filter_lt(const iqdb_allocator *alloc, const char *key, iqdb_value v,
                            iqdb_filter **out);
IQDB_API int iqdb_filter_le(const iqdb_allocator *alloc, const char *key, iqdb_value v,
                            iqdb_filter **out);
IQDB_API int iqdb_filter_gt(const iqdb_allocator *alloc, const char *key, iqdb_value v,
                            iqdb_filter **out);
IQDB_API int iqdb_filter_ge(const iqdb_allocator *alloc, const char *key, iqdb_value v,
                            iqdb_filter **out);

/**
 * `key IN (values[0], ..., values[n-1])`; n may be 0 (always false).
 * Returns as iqdb_filter_cmp, and IQDB_INVALID when n > IQDB_MAX_FILTER_IN or values is NULL
 * with n > 0. Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_filter_in(const iqdb_allocator *alloc, const char *key, const iqdb_value *values,
                            size_t n, iqdb_filter **out);

/** `EXISTS(key)`. Returns as iqdb_filter_cmp. Threads: shared. Since: 0.1. */
IQDB_API int iqdb_filter_exists(const iqdb_allocator *alloc, const char *key, iqdb_filter **out);

/**
 * AND / OR of `n` children; NOT of one child. These always take ownership of the children they
 * are given — on success they become part of the result, on failure they are destroyed — so
 * calls nest without leaks. A NULL child (for example the result of a failed inner call) makes
 * the call fail with IQDB_INVALID after destroying the other children.
 * Returns IQDB_OK; IQDB_MISUSE (out NULL; children NULL with n > 0); IQDB_INVALID (NULL child;
 * the result would nest deeper than IQDB_MAX_FILTER_DEPTH); IQDB_NOMEM.
 * Threads: none (on the children). Since: 0.1.
 */
IQDB_API int iqdb_filter_and(const iqdb_allocator *alloc, iqdb_filter *const *children, size_t n,
                             iqdb_filter **out);
IQDB_API int iqdb_filter_or(const iqdb_allocator *alloc, iqdb_filter *const *children, size_t n,
                            iqdb_filter **out);
IQDB_API int iqdb_filter_not(iqdb_filter *child, iqdb_filter **out);

/**
 * Parses filter text. The grammar (keywords in any case):
 *
 *   expr    := term { OR term }
 *   term    := factor { AND factor }
 *   factor  := NOT factor | '(' expr ')' | TRUE | FALSE | EXISTS '(' key ')'
 *            | key op literal | key [NOT] IN '(' [ literal { ',' literal } ] ')'
 *   op      := '=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>='
 *   key     := [A-Za-z_][A-Za-z0-9_.-]*  |  '`' any bytes but '`' '`'
 *   literal := 'string' | "string" | integer | number | TRUE | FALSE | NULL
 *
 * Strings use SQL-style escaping (a doubled quote stands for one). Integers that fit int64 are
 * INT; numbers with a '.', an exponent, or out of int64 range are DOUBLE. `k NOT IN (...)` means
 * NOT (k IN (...)). Example: `kind = 'doc' AND year >= 2020 AND tag IN ('a', 'b') AND NOT
 * archived = true`.
 *
 * `len` is the text length in bytes (the text need not be NUL-terminated). On a syntax error
 * returns IQDB_INVALID, sets *err_offset (may be NULL) to the byte offset where parsing failed,
 * and iqdb_errmsg(NULL) says what was expected there. Also IQDB_MISUSE (text or out NULL),
 * IQDB_NOMEM. Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_filter_parse(const iqdb_allocator *alloc, const char *text, size_t len,
                               iqdb_filter **out, size_t *err_offset);

/**
 * Evaluates `f` against a metadata object (NULL `m` is a record without metadata): *result is 1
 * or 0. Useful for testing a filter outside a search. Returns IQDB_OK or IQDB_MISUSE.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_filter_matches(const iqdb_filter *f, const iqdb_meta *m, int *result);

/** Frees a filter and its children; NULL is a no-op. Threads: none (on `f`). Since: 0.1. */
IQDB_API void iqdb_filter_destroy(iqdb_filter *f);

/* ============================================================================================ */
/* Records                                                                                      */
/* ============================================================================================ */

/**
 * Inserts the record `id`, or replaces it if it exists: the vector and the metadata are both
 * replaced (a NULL or empty `meta` leaves the record without metadata). The vector (dim floats)
 * and the metadata are copied. A replaced record counts as inserted now for tie-breaking.
 * Returns IQDB_OK; IQDB_MISUSE (db or vec NULL, closed handle); IQDB_INVALID (a NaN or
 * infinite component); IQDB_FULL (the row limit); IQDB_NOMEM. On failure nothing changed.
 * The dimension is implied by the handle: `vec` must point to dim floats.
 *
 * Durable handles (see iqdb_sync): the write is logged to the WAL before the call returns, and
 * under ALWAYS it returns only once the record is on disk. It becomes visible to searches
 * before its fsync completes (a search may see a write whose fsync then fails). Also returns
 * IQDB_READONLY; IQDB_FATAL (an earlier fsync failed: the handle refuses writes until it is
 * reopened, and keeps serving reads); IQDB_IOERR_* (writing the WAL failed: nothing changed;
 * IQDB_IOERR_NOSPACE when the disk is full). IQDB_IOERR_FSYNC is the one failure after which
 * the write is visible in memory but was not acknowledged: whether it survives a reopen is
 * unknown, and the handle is fatal from then on.
 * Threads: exclusive. Since: 0.1.
 */
IQDB_API int iqdb_upsert(iqdb *db, iqdb_id id, const float *vec, const iqdb_meta *meta);

/**
 * Upserts `n` records at once, all or nothing: either every record is applied, in order (a
 * later duplicate id replaces an earlier one), or none is and the database is unchanged.
 * `vecs` holds n * dim floats, row after row. `metas` may be NULL (no metadata for any record),
 * and entries of it may be NULL. n = 0 is a no-op returning IQDB_OK. With an HNSW index a large
 * batch (256 records or more) is linked into the graph by all worker threads at once.
 * A durable batch is one WAL record, so a crash keeps all of it or none; a batch whose record
 * would pass 1 GiB is refused with IQDB_INVALID.
 * Returns as iqdb_upsert; IQDB_INVALID names the first bad record in iqdb_errmsg;
 * IQDB_INTERRUPTED (a batch stopped by options.progress_fn or iqdb_interrupt — while its
 * records are stored, if 1024 or more, or while an HNSW index links them, if 256 or more:
 * nothing of it was applied or logged).
 * Threads: exclusive. Since: 0.1.
 */
IQDB_API int iqdb_upsert_batch(iqdb *db, size_t n, const iqdb_id *ids, const float *vecs,
                               const iqdb_meta *const *metas);

/**
 * Reads the record `id`. `vec_out` (may be NULL) receives dim floats (with
 * IQDB_QUANT_CODES_ONLY, once trained: the vector its code decodes to). `meta_out` (may be NULL)
 * receives a new metadata object owned by the caller (free it with iqdb_meta_destroy; it uses
 * the handle's allocator), or NULL when the record has no metadata.
 * Returns IQDB_OK; IQDB_NOTFOUND; IQDB_MISUSE; IQDB_NOMEM. On failure *meta_out is NULL.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_get(iqdb *db, iqdb_id id, float *vec_out, iqdb_meta **meta_out);

/**
 * Deletes the record `id`. *existed (may be NULL) is 1 if it was there, 0 if not; deleting an
 * absent id is not an error and writes nothing to the WAL. Returns IQDB_OK or IQDB_MISUSE; for
 * durable handles also IQDB_READONLY, IQDB_FATAL and IQDB_IOERR_* as iqdb_upsert (also when the
 * id is absent, so a fatal handle reports itself), and IQDB_NOMEM. On failure *existed is 0 and
 * nothing changed.
 * Threads: exclusive. Since: 0.1.
 */
IQDB_API int iqdb_delete(iqdb *db, iqdb_id id, int *existed);

/** Number of records. Returns IQDB_OK or IQDB_MISUSE. Threads: shared. Since: 0.1. */
IQDB_API int iqdb_count(iqdb *db, uint64_t *n);

/* ---- Records named by byte keys ------------------------------------------------------------
 *
 * A record is named either by a u64 id (the calls above) or by a byte key: any non-empty string
 * of 1 .. IQDB_MAX_ID_KEY_LEN bytes (document ids, UUIDs, paths; zero bytes and bytes that are
 * not UTF-8 are fine — keys are compared byte for byte, never as text). The two kinds never
 * compare equal: the u64 1 and the one-byte key "\x01" are two different records, and one
 * database may hold both kinds. Keys are copied. Metadata, filters, search and search_batch work
 * the same for both kinds; a search hit says which kind it is (iqdb_hit_has_key) and gives a
 * keyed record's key through iqdb_hit_key. A database that never stores a key pays nothing for
 * them (no per-row memory, no search-time work; see iqdb_stats.mem_keys).
 *
 * An empty key (key_len 0) or a longer one than IQDB_MAX_ID_KEY_LEN is IQDB_INVALID; a NULL key
 * with key_len > 0 is IQDB_MISUSE. Durable handles log keyed writes like the others
 * (docs/FORMAT.md, format version 2). */

/**
 * iqdb_upsert for the record named by the byte key `key` (key_len bytes). Returns as
 * iqdb_upsert, and IQDB_INVALID / IQDB_MISUSE for a bad key (above).
 * Threads: exclusive. Since: 0.1.
 */
IQDB_API int iqdb_upsert_key(iqdb *db, const void *key, size_t key_len, const float *vec,
                             const iqdb_meta *meta);

/**
 * iqdb_upsert_batch for records named by byte keys: record i is keys[i] (key_lens[i] bytes).
 * All or nothing; a later duplicate key in the batch replaces an earlier one. A bad key fails
 * the whole batch (IQDB_INVALID, iqdb_errmsg names the record). Returns as iqdb_upsert_batch.
 * Threads: exclusive. Since: 0.1.
 */
IQDB_API int iqdb_upsert_batch_key(iqdb *db, size_t n, const void *const *keys,
                                   const size_t *key_lens, const float *vecs,
                                   const iqdb_meta *const *metas);

/**
 * iqdb_get for the record named by `key`. Returns as iqdb_get (IQDB_NOTFOUND when no record
 * has this key), and IQDB_INVALID / IQDB_MISUSE for a bad key.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_get_key(iqdb *db, const void *key, size_t key_len, float *vec_out,
                          iqdb_meta **meta_out);

/**
 * iqdb_delete for the record named by `key`: *existed (may be NULL) is 1 if it was there.
 * Returns as iqdb_delete, and IQDB_INVALID / IQDB_MISUSE for a bad key.
 * Threads: exclusive. Since: 0.1.
 */
IQDB_API int iqdb_delete_key(iqdb *db, const void *key, size_t key_len, int *existed);

/* ============================================================================================ */
/* Search                                                                                       */
/* ============================================================================================ */

/**
 * One search result. For a record named by a u64 id, `id` is that id and `reserved` is 0. For a
 * record named by a byte key, `reserved` is non-zero and `id` and `reserved` together are a key
 * handle (not the key, and not a stable record id): pass the hit to iqdb_hit_key to read the
 * key. Test the kind with iqdb_hit_has_key. Search itself stays allocation-free.
 */
typedef struct iqdb_hit {
    iqdb_id id;        /**< the u64 id, or (keyed hits) part of the key handle */
    float distance;    /**< in the database's metric; see iqdb_metric */
    uint32_t reserved; /**< 0: a u64 id; non-zero: a keyed hit (the rest of the key handle) */
} iqdb_hit;

/** 1 when the hit is a record named by a byte key, 0 for a u64 id. Inline. Since: 0.1. */
static inline int iqdb_hit_has_key(const iqdb_hit *h) { return h->reserved != 0; }

/** Per-query parameters. Zero means default for every field. */
typedef struct iqdb_search_params {
    size_t struct_size;        /**< sizeof(iqdb_search_params), set by the init function */
    const iqdb_filter *filter; /**< only records matching it are returned; NULL = all */
    int exact;                 /**< non-zero: bypass the index and scan every row (exact
                                    ground truth); the flat index is always exact */
    uint32_t ef;               /**< HNSW candidate list size for this query (at least k is
                                    used): larger is slower and finds more of the true nearest
                                    records; 0 = the index's ef_search */
    uint32_t n_probes;         /**< IVF lists to scan for this query, 0 .. 2^20 (more than the
                                    index has means all); 0 = the index's */
    uint32_t oversample;       /**< quantized indexes: re-rank the best k * oversample codes
                                    (HNSW: of the walk's max(ef, k) results),
                                    0 .. IQDB_MAX_OVERSAMPLE; 0 = the index's */
} iqdb_search_params;

/** Defaults (no filter, index search). Inline. Threads: none (on `p`). Since: 0.1. */
static inline void iqdb_search_params_init(iqdb_search_params *p) {
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
}

/**
 * How a search found its candidates. Append-only. With an HNSW index, a filtered search is
 * planned per query from the filter's estimated selectivity: SCAN_FILTERED (exact) when few
 * records match, HNSW_FILTERED otherwise — and SCAN_FILTERED again when the graph walk turns out
 * costlier than the scan would have been.
 */
typedef enum iqdb_strategy {
    IQDB_STRATEGY_NONE = 0,          /**< nothing to search: k = 0 or no rows */
    IQDB_STRATEGY_SCAN = 1,          /**< exact scan over every row (also an untrained IVF or
                                          quantized index, and params.exact) */
    IQDB_STRATEGY_SCAN_FILTERED = 2, /**< exact scan over the rows matching the filter */
    IQDB_STRATEGY_HNSW = 3,          /**< HNSW graph search (approximate) */
    IQDB_STRATEGY_HNSW_FILTERED = 4, /**< HNSW graph walk that returns only matching records:
                                          non-matching nodes are walked through, not returned
                                          (approximate) */
    IQDB_STRATEGY_IVF = 5,           /**< scanned the nearest IVF lists (n_lists_scanned of
                                          them: more than n_probes when the probed lists held
                                          fewer than k rows) */
    IQDB_STRATEGY_IVF_FILTERED = 6,  /**< as IVF, with the filter evaluated inside the lists;
                                          more lists are scanned until k rows match or every
                                          list has been scanned */
    IQDB_STRATEGY_CODES = 7,         /**< flat index with a quantizer: every code scanned, the
                                          shortlist re-ranked */
    IQDB_STRATEGY_CODES_FILTERED = 8 /**< as CODES, over the rows matching the filter */
} iqdb_strategy;

/**
 * What a search did. The caller sets struct_size and the library fills the fields that size
 * covers:  iqdb_search_info info = {.struct_size = sizeof info};
 */
typedef struct iqdb_search_info {
    size_t struct_size;
    int complete; /**< 1 when the result holds min(k, number of matching records)
                       hits. For the exact strategies nothing that should be there is
                       missing; for the HNSW strategies the count is guaranteed (a walk that
                       finds fewer than k matches finishes with a sweep of the rows it did
                       not see) while the hits are approximate nearest neighbours */
    iqdb_strategy strategy;
    uint64_t n_distances;     /**< distance computations (codes and full-precision rows) */
    uint64_t n_visited;       /**< rows (or nodes) examined, filtered or not */
    uint64_t n_matched;       /**< examined rows that passed the filter */
    uint32_t n_lists_scanned; /**< IVF lists scanned (0 for other strategies) */
    uint32_t n_reranked;      /**< shortlisted candidates re-ranked at full precision */
    uint32_t cache_hit;       /**< 1 when the result came from the result cache: the counters
                                   above are then 0 (nothing was computed) and complete /
                                   strategy are those of the search that filled the entry */
} iqdb_search_info;

/**
 * Finds the k records nearest to `query` (dim floats), sorted by distance, ties to the record
 * inserted (or last replaced) first. Writes min(k, matching records) hits into `hits` (room for
 * k hits) and their number into *n_hits. k = 0 or an empty database gives 0 hits and IQDB_OK.
 * k larger than the database gives every matching record; no k-sized memory is allocated, so
 * k = SIZE_MAX with an array large enough for the database is fine. A filtered search returns
 * min(k, matching) hits. `p` and `info` may be NULL.
 * With an IVF or quantized index the result is approximate (the k nearest among the rows the
 * index examined), but every reported distance is exact and the hits are sorted as above; a
 * filtered IVF search scans more lists until k rows match, so it too returns min(k, matching)
 * hits.
 * Returns IQDB_OK; IQDB_MISUSE (db, query, n_hits NULL; hits NULL with k > 0; p or info with
 * struct_size 0); IQDB_INVALID (NaN / infinite query component; p->n_probes or p->oversample
 * out of range); IQDB_NOMEM (only when the first searches grow the scratch memory; steady-state
 * searches do not allocate).
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_search(iqdb *db, const float *query, size_t k, const iqdb_search_params *p,
                         iqdb_hit *hits, size_t *n_hits, iqdb_search_info *info);

/**
 * Runs `n` searches at once, spread over the worker threads: query i is `qs + i * dim`, its hits
 * go to `hits + i * k` and their number to n_hits[i]. The results equal n calls of iqdb_search
 * on the same database state (a batch sees one consistent state). n = 0 is a no-op.
 * Returns as iqdb_search; IQDB_INVALID also when n * k overflows or a query is invalid (the
 * message names which); IQDB_INTERRUPTED (options.progress_fn or iqdb_interrupt, checked every
 * 2048 queries); on failure every n_hits[i] is 0.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_search_batch(iqdb *db, const float *qs, size_t n, size_t k,
                               const iqdb_search_params *p, iqdb_hit *hits, size_t *n_hits);

/**
 * Copies the byte key of a keyed search hit (iqdb_hit_has_key) into `buf` (room for `cap`
 * bytes) and sets *key_len (may not be NULL) to its length. A buffer of IQDB_MAX_ID_KEY_LEN
 * bytes always suffices. Nothing is allocated.
 *
 * The key handle names one version of one record: it resolves while that version is in the
 * database. If the record was deleted, or replaced by a later upsert of the same key, between
 * the search and this call, it returns IQDB_NOTFOUND (and never another record's key — slots
 * are reused, but a handle also carries the version's unique insertion sequence number). To
 * read keys consistently with a search under concurrent writers, resolve them right after the
 * search and treat IQDB_NOTFOUND as "that result is gone". With an IVF index, a write that
 * triggers a training may renumber the rows, so a handle taken before it can also give
 * IQDB_NOTFOUND afterwards although the record is still there (search again). A hit is
 * meaningful only for the handle whose search produced it.
 * Returns IQDB_OK; IQDB_NOTFOUND (the version is gone); IQDB_INVALID (a u64 hit: reserved is
 * 0; or cap smaller than the key — then *key_len is the length needed and buf is untouched);
 * IQDB_MISUSE (db, hit or key_len NULL; buf NULL with cap > 0). On other failures *key_len is 0.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_hit_key(iqdb *db, const iqdb_hit *hit, void *buf, size_t cap, size_t *key_len);

/* ============================================================================================ */
/* Stats and checks                                                                             */
/* ============================================================================================ */

/**
 * Database statistics. The caller sets struct_size and the library fills the fields that size
 * covers:  iqdb_stats s = {.struct_size = sizeof s};
 * Memory figures are bytes currently allocated through the handle's allocator, by component.
 */
typedef struct iqdb_stats {
    size_t struct_size;
    uint64_t count; /**< records */
    uint32_t dim;
    iqdb_metric metric;
    iqdb_index_kind index;
    iqdb_simd simd;       /**< kernel level in use */
    uint32_t threads;     /**< worker threads for batch calls */
    uint64_t slots;       /**< row slots allocated (records + free slots) */
    uint64_t meta_keys;   /**< distinct metadata keys seen */
    uint64_t mem_total;   /**< everything allocated through the handle's allocator */
    uint64_t mem_vectors; /**< the vector arena (heap only: with IQDB_VECTORS_IN_FILE the
                               chunks are in mapped_vectors instead) */
    uint64_t mem_rows;    /**< ids, sequence numbers, norms, the id map */
    uint64_t mem_meta;    /**< metadata records and the key dictionary */
    uint64_t mem_index;   /**< the index structures (IVF: centroids, lists, slot maps,
                               quantizer parameters), codes excluded */
    uint64_t mem_scratch; /**< search scratch and worker state */
    /* Durability (0 for in-memory handles). */
    int durable;             /**< 1 for a handle opened with a path */
    int read_only;           /**< 1 for a read-only handle */
    int fatal;               /**< 1 once an fsync failed (writes refused until reopen) */
    iqdb_sync sync;          /**< the policy in use */
    uint64_t last_lsn;       /**< LSN of the latest logged write */
    uint64_t durable_lsn;    /**< highest LSN known to be on disk (WAL fsync or snapshot) */
    uint64_t checkpoint_lsn; /**< the LSN the snapshot file includes */
    uint64_t generation;     /**< the snapshot's generation (+1 per checkpoint) */
    uint64_t wal_bytes;      /**< current size of the WAL file */
    uint64_t wal_syncs;      /**< WAL fsyncs done by this handle */
    uint64_t checkpoints;    /**< checkpoints done by this handle */
    /* Byte keys. */
    uint64_t keyed;    /**< records named by a byte key (count - keyed are named by u64 ids) */
    uint64_t mem_keys; /**< the key column, the key map and the keys: 0 until a key is stored */
    /* Result cache (all 0 when options.cache_entries is 0). */
    uint64_t cache_hits;          /**< searches answered from the cache */
    uint64_t cache_misses;        /**< searches that looked and computed */
    uint64_t cache_evictions;     /**< entries removed for room (entries or bytes) or age */
    uint64_t cache_invalidations; /**< entries removed because a write could change them (or
                                       iqdb_cache_clear) */
    uint64_t cache_len;           /**< entries now */
    uint64_t cache_capacity;      /**< options.cache_entries */
    uint64_t cache_bytes;         /**< bytes the entries hold now */
    uint64_t cache_max_bytes;     /**< options.cache_bytes (0: no byte limit) */
    uint64_t mem_cache;           /**< the cache's memory: entries, hash table, ARC ghosts
                                       (all in mem_total, no longer in mem_scratch), plus an
                                       estimate for the copies of filters, which go through the
                                       handle's allocator but are not counted in mem_total */
    /* Since 0.1 (IVF and quantization). Bytes per vector of a component = mem_x / count. */
    uint64_t mem_codes;    /**< quantized codes (not part of mem_index) */
    iqdb_quant quant;      /**< the quantizer */
    uint32_t code_bytes;   /**< bytes of one code (0 without a quantizer) */
    uint32_t ivf_lists;    /**< IVF lists (0 while untrained or without IVF) */
    uint32_t trained;      /**< 1 when the IVF / quantizer has been trained */
    uint64_t trained_rows; /**< the row count at the last training */
    /* Since 0.1 (IQDB_VECTORS_IN_FILE). */
    uint64_t mapped_vectors; /**< bytes of vectors in the mapped vector file (not in mem_total
                                  or mem_vectors); 0 without the flag */
} iqdb_stats;

/**
 * Fills `*s`. Returns IQDB_OK; IQDB_MISUSE (NULL, struct_size 0). Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_stats_get(iqdb *db, iqdb_stats *s);

/**
 * Verifies the handle's internal invariants: the id map, the byte-key map (every key leads to
 * its slot, compared in full) and the row slots agree, every stored vector is finite, every
 * metadata record decodes, the index passes its own check. For HNSW: every link names a live
 * record other than its owner, without duplicates, within the degree bounds and levels; the
 * entry point has the highest level; link counts agree; and every live record is reachable from
 * the entry point. For IVF: every live row is in exactly one list and no dead row is in any,
 * centroids and quantizer parameters are finite, every code equals a fresh encoding of its row.
 * For a durable handle it also reads the files back and verifies every checksum: the
 * snapshot's header, section table, every block and section, and every WAL record up to the end
 * of the log.
 * Returns IQDB_OK or IQDB_CORRUPT / IQDB_CORRUPT_SNAPSHOT / IQDB_CORRUPT_WAL (iqdb_errmsg says
 * what failed); IQDB_MISUSE; IQDB_NOMEM; IQDB_IOERR_* (reading the files failed).
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_check(iqdb *db);

/* ============================================================================================ */
/* Result cache and interrupts                                                                  */
/* ============================================================================================ */

/**
 * The result cache (options.cache_entries > 0) remembers whole search results, keyed on the
 * exact bits of the query, k, a canonical form of the filter, and every search parameter (ef,
 * n_probes, exact). A cached result is always identical to what the search would return now:
 *  - exact results (the FLAT index, or params.exact) are invalidated precisely: a write evicts
 *    only the entries it could change — the entry holds a deleted or replaced id, or a new
 *    record version matching the entry's filter is strictly nearer to the entry's query than
 *    its k-th hit (a tie loses: the new version is the latest insert), or could enter an entry
 *    holding fewer than k hits. A write far from every cached query evicts nothing.
 *  - approximate results (HNSW, IVF without exact) are evicted by every write: a graph or list
 *    change can alter an approximate answer without meeting the rules above.
 * A write pays for this with one distance per (cached exact entry, written record); a batch of
 * more than 64 records that writes more than half of the database's rows empties the cache
 * instead (checking would cost more than recomputing every entry).
 * iqdb_search and iqdb_search_batch use the cache: a batch looks each query up and runs only the
 * misses (as one smaller batch); on the flat index it caches their results (an approximate
 * index's batch does not report per-query strategies, so its results are not cached).
 * iqdb_search_info.cache_hit says when a result came from it; iqdb_stats has its counters.
 * With a cache, a search whose result is cached allocates its entry (through the handle's
 * allocator); a failed allocation only means the result is not cached.
 */

/**
 * Empties the result cache (counted as invalidations). A no-op without a cache.
 * Returns IQDB_OK or IQDB_MISUSE. Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_cache_clear(iqdb *db);

/**
 * Asks every long call running on `db` right now — iqdb_search_batch, iqdb_upsert_batch,
 * iqdb_checkpoint (also the one inside iqdb_close), and index builds — to stop; each returns
 * IQDB_INTERRUPTED at its next check (at least once per MiB, 1024 records, 2048 queries, 256
 * HNSW nodes or IVF training step) and leaves the database as it was (an automatic IVF training
 * after a write is skipped instead: see iqdb_progress_fn). Calls that start after iqdb_interrupt
 * returns are not affected; a call that finishes before its next check succeeds. Single searches
 * and single writes are too short to check. Safe to call from any thread, including a progress or
 * log callback. Returns IQDB_OK or IQDB_MISUSE. Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_interrupt(iqdb *db);

/* ============================================================================================ */
/* Async calls                                                                                  */
/* ============================================================================================ */

/**
 * An executor runs iqdb calls on its own worker threads. Each iqdb_async_<call> submits the
 * synchronous iqdb_<call> and returns at once; completion is reported through a callback, a
 * future one can wait on (with a timeout), or both.
 *
 * Ownership. Every input is copied at submission — vectors, ids, metadata objects, filters (in
 * the search parameters), the path and the options — so the caller may free or reuse them as
 * soon as the submit returns. Outputs (hits, n_hits, info, vec_out, meta_out, existed, the
 * iqdb ** of open) are the caller's memory, written by the worker: they must stay valid until
 * the call completes (its future is done, or its callback was called) — or a cancel succeeded.
 *
 * Order. Calls start in submission order; with more than one thread they may run at once and
 * finish in any order (the handle's own locking applies: writes exclude everything, searches
 * share). An executor with one thread runs them one after another. To order two calls, wait
 * for the first. iqdb_async_close waits for the calls on that handle that are running; calls
 * submitted for a handle after its close are misuse.
 *
 * Callbacks run on the worker thread after the call returned and before its future turns done
 * (so a waiter never sees "done" before the callback finished), or on the cancelling thread for
 * a cancelled call (rc IQDB_INTERRUPTED). A callback must not wait for another future of the
 * same executor when the executor has one thread.
 */
typedef struct iqdb_async iqdb_async;
/** A submitted call. Opaque; released with iqdb_future_release. */
typedef struct iqdb_future iqdb_future;
/** Completion callback: `rc` is the call's return code. */
typedef void (*iqdb_async_fn)(void *ud, iqdb_future *f, int rc);

/**
 * Creates an executor with `threads` workers (0 = the number of online CPUs, at most
 * IQDB_MAX_THREADS). Its memory (and that of every call's copies) goes through `alloc` (NULL =
 * libc). Returns IQDB_OK; IQDB_MISUSE (out NULL); IQDB_INVALID (threads too large, a half-set
 * allocator); IQDB_NOMEM. Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_async_create(const iqdb_allocator *alloc, uint32_t threads, iqdb_async **out);

/**
 * Cancels every queued call (each completes with IQDB_INTERRUPTED, callbacks run), waits for
 * the running ones, joins the workers and releases the executor. Futures stay valid: they can
 * still be waited on and must still be released. NULL is a no-op.
 * Threads: none (no submit on `a` may run during or after it). Since: 0.1.
 */
IQDB_API void iqdb_async_destroy(iqdb_async *a);

/*
 * The submits. Each takes the synchronous call's arguments (same meaning, same codes when the
 * call runs), then `cb` and `ud` (cb may be NULL) and `fut` (may be NULL: no future; then cb is
 * the only way to learn the outcome). A submit returns IQDB_OK (the call is queued; *fut set);
 * IQDB_MISUSE (a NULL executor, a NULL handle or required argument, a destroyed executor);
 * IQDB_NOMEM (copying the inputs failed); or an argument error the synchronous call would give
 * before touching the database (IQDB_INVALID for a NaN vector, for example) — in each case
 * nothing was queued, cb is not called and *fut is NULL.
 * Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_async_open(iqdb_async *a, const char *path, const iqdb_options *opts, iqdb **out,
                             iqdb_async_fn cb, void *ud, iqdb_future **fut);
IQDB_API int iqdb_async_close(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud,
                              iqdb_future **fut);
IQDB_API int iqdb_async_upsert(iqdb_async *a, iqdb *db, iqdb_id id, const float *vec,
                               const iqdb_meta *meta, iqdb_async_fn cb, void *ud,
                               iqdb_future **fut);
IQDB_API int iqdb_async_upsert_batch(iqdb_async *a, iqdb *db, size_t n, const iqdb_id *ids,
                                     const float *vecs, const iqdb_meta *const *metas,
                                     iqdb_async_fn cb, void *ud, iqdb_future **fut);
IQDB_API int iqdb_async_get(iqdb_async *a, iqdb *db, iqdb_id id, float *vec_out,
                            iqdb_meta **meta_out, iqdb_async_fn cb, void *ud, iqdb_future **fut);
IQDB_API int iqdb_async_delete(iqdb_async *a, iqdb *db, iqdb_id id, int *existed, iqdb_async_fn cb,
                               void *ud, iqdb_future **fut);
IQDB_API int iqdb_async_count(iqdb_async *a, iqdb *db, uint64_t *n, iqdb_async_fn cb, void *ud,
                              iqdb_future **fut);
IQDB_API int iqdb_async_search(iqdb_async *a, iqdb *db, const float *query, size_t k,
                               const iqdb_search_params *p, iqdb_hit *hits, size_t *n_hits,
                               iqdb_search_info *info, iqdb_async_fn cb, void *ud,
                               iqdb_future **fut);
IQDB_API int iqdb_async_search_batch(iqdb_async *a, iqdb *db, const float *qs, size_t n, size_t k,
                                     const iqdb_search_params *p, iqdb_hit *hits, size_t *n_hits,
                                     iqdb_async_fn cb, void *ud, iqdb_future **fut);
IQDB_API int iqdb_async_checkpoint(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud,
                                   iqdb_future **fut);
IQDB_API int iqdb_async_check(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud,
                              iqdb_future **fut);
/* Keys are copied like every other input; a NULL key with key_len > 0 is IQDB_MISUSE and a key
 * longer than IQDB_MAX_ID_KEY_LEN is IQDB_INVALID at submission; an empty key fails when the
 * call runs (IQDB_INVALID), as the synchronous call does. `s` of iqdb_async_stats_get is the
 * caller's (s->struct_size set) and written when the call runs. */
IQDB_API int iqdb_async_upsert_key(iqdb_async *a, iqdb *db, const void *key, size_t key_len,
                                   const float *vec, const iqdb_meta *meta, iqdb_async_fn cb,
                                   void *ud, iqdb_future **fut);
IQDB_API int iqdb_async_upsert_batch_key(iqdb_async *a, iqdb *db, size_t n, const void *const *keys,
                                         const size_t *key_lens, const float *vecs,
                                         const iqdb_meta *const *metas, iqdb_async_fn cb, void *ud,
                                         iqdb_future **fut);
IQDB_API int iqdb_async_get_key(iqdb_async *a, iqdb *db, const void *key, size_t key_len,
                                float *vec_out, iqdb_meta **meta_out, iqdb_async_fn cb, void *ud,
                                iqdb_future **fut);
IQDB_API int iqdb_async_delete_key(iqdb_async *a, iqdb *db, const void *key, size_t key_len,
                                   int *existed, iqdb_async_fn cb, void *ud, iqdb_future **fut);
IQDB_API int iqdb_async_optimize(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud,
                                 iqdb_future **fut);
IQDB_API int iqdb_async_stats_get(iqdb_async *a, iqdb *db, iqdb_stats *s, iqdb_async_fn cb,
                                  void *ud, iqdb_future **fut);
IQDB_API int iqdb_async_cache_clear(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud,
                                    iqdb_future **fut);

/**
 * Waits until the call is done, at most `timeout_ms` milliseconds (0: just look; UINT32_MAX:
 * no limit). Returns IQDB_OK when it is done (then *rc, which may be NULL, is the call's return
 * code) or IQDB_BUSY on timeout; IQDB_MISUSE (f NULL). Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_future_wait(iqdb_future *f, uint32_t timeout_ms, int *rc);

/**
 * Cancels a call that has not started: it completes with IQDB_INTERRUPTED (its callback runs
 * now, on this thread) and never touches the database; returns IQDB_OK. A call that is running
 * is asked to stop — this call only, where iqdb_interrupt stops every long call on the handle:
 * a long one (iqdb_upsert_batch, iqdb_search_batch, iqdb_checkpoint, iqdb_optimize, index
 * builds) returns IQDB_INTERRUPTED at its next check with nothing changed, a short one simply
 * finishes; the cancel returns IQDB_BUSY and the future tells the outcome. IQDB_BUSY too when
 * the call is done already; IQDB_MISUSE (f NULL). Threads: shared. Since: 0.1.
 */
IQDB_API int iqdb_future_cancel(iqdb_future *f);

/**
 * Drops the caller's reference. A call still queued or running goes on (its outputs must stay
 * valid until it completes: cancel and wait first if they are about to go away). NULL is a
 * no-op. Threads: none (on `f`). Since: 0.1.
 */
IQDB_API void iqdb_future_release(iqdb_future *f);

/**
 * Rebuilds the index structures from the records, for every index kind:
 *  - FLAT without a quantizer: nothing to do.
 *  - FLAT with a quantizer: retrains the quantizer on the current rows and re-encodes them.
 *  - IVF: retrains the centroids (n_lists chosen again when the option is 0) and the quantizer,
 *    and reassigns every row (a database with rows is trained even below the automatic
 *    threshold; an empty one returns to the untrained state).
 *  - HNSW: a fresh graph built over the worker threads in insertion order, as if the records
 *    had been inserted into an empty database (the graph stays correct and searchable under
 *    deletes without it; optimize makes it as good as a fresh build and releases memory of
 *    records deleted since the last growth). With SQ8 / BINARY codes the quantizer is first
 *    retrained on the rows (any number; none: untrained) and the graph built on the new codes;
 *    codes only keeps quantizer and codes.
 * All or nothing: the new structures are built before the old ones are released, so on failure
 * (IQDB_NOMEM, or IQDB_INTERRUPTED: options.progress_fn or iqdb_interrupt stopped it) the
 * database is unchanged; until the call returns every other call waits. Progress is reported
 * as IQDB_PROGRESS_OPTIMIZE.
 * Nothing is logged (the records do not change); on a durable handle the rebuilt index is then
 * checkpointed, so a reopen — also after a crash — loads it instead of rebuilding; if that
 * checkpoint fails the call returns its error, the handle keeps the rebuilt index and the next
 * checkpoint (or iqdb_close) stores it.
 * Returns IQDB_OK; IQDB_MISUSE; IQDB_NOMEM; IQDB_INTERRUPTED; IQDB_READONLY, IQDB_FATAL (a
 * durable handle that cannot write); the codes of iqdb_checkpoint. Threads: exclusive.
 * Since: 0.1.
 */
IQDB_API int iqdb_optimize(iqdb *db);

#ifdef __cplusplus
}
#endif
#endif /* IQDB_H */
