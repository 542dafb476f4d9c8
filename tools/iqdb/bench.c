/*
 * bench.c — `iqdb bench`: recall against speed for one database, sweeping the index's search
 * knob (HNSW ef, IVF n_probes), with an exact scan as the first row.
 *
 * The database is either an existing file (opened read-only) or built in memory from --base.
 * Ground truth is read from --gt (.ivecs, one row of neighbour ids per query) or computed with
 * by the exact row (params.exact, under the same filter), whose timed answers double as the
 * truth. Each point runs every query once, one at a time on the calling thread, timing each
 * call: QPS = queries / total time; p50 / p99 are per-query latencies. A warm-up pass over up to
 * 20 queries runs first. A flat index has only the exact row (its own search is that scan).
 *
 * recall@k counts ties fairly: a returned record is correct when it is one of the k true
 * neighbours, or when its distance equals the k-th true neighbour's — both distances recomputed
 * by the tool in double precision from the stored vectors, so equal vectors (or equal integer
 * sums) are recognised exactly whatever order the index broke the tie in. A query with fewer
 * than k matching records (a selective filter) is scored over the matches there are.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

typedef struct point {
    const char *mode; /* "exact", "flat", "hnsw", "ivf" */
    const char *knob; /* "ef", "probes" or "-" */
    uint32_t value;
    double recall, qps, p50_ms, p99_ms, mean_dist;
} point;

static int parse_list(const char *s, uint32_t *out, size_t cap, size_t *n) {
    *n = 0;
    while (*s) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > UINT32_MAX || *n == cap) return -1;
        out[(*n)++] = (uint32_t)v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return *n ? 0 : -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct bench {
    iqdb *db;
    size_t dim, nq, k;
    iqdb_metric metric;
    const float *q;
    const iqdb_filter *filter;
    /* ground truth: per query up to k ids, their count, and the k-th distance (double) */
    iqdb_id *gt;
    size_t *gt_n;
    double *gt_kth;
    int fill_gt; /* the exact point records its hits as the ground truth */
    float *vec;  /* scratch: one vector */
    iqdb_hit *hits;
    double *lat;
} bench;

/* The tool's own distance from query q to record id (NAN if the record is missing). */
static double dist_to(bench *b, size_t q, iqdb_id id) {
    if (iqdb_get(b->db, id, b->vec, NULL) != IQDB_OK) return NAN;
    return cli_distance(b->metric, b->q + q * b->dim, b->vec, b->dim);
}

static int load_gt(bench *b, const char *path) {
    int32_t *g;
    size_t n, kk;
    cli_err e;
    if (cli_read_ivecs(path, &g, &n, &kk, &e)) return cli_error(EXIT_INPUT, "%s", e.msg);
    if (n < b->nq || kk < b->k) {
        free(g);
        return cli_error(EXIT_INPUT, "%s: %zu rows of %zu ids; the benchmark needs %zu of %zu",
                         path, n, kk, b->nq, b->k);
    }
    for (size_t q = 0; q < b->nq; q++) {
        for (size_t i = 0; i < b->k; i++) {
            int32_t id = g[q * kk + i];
            if (id < 0 || iqdb_get(b->db, (iqdb_id)id, NULL, NULL) != IQDB_OK) {
                free(g);
                return cli_error(EXIT_INPUT,
                                 "%s: row %zu names id %d, which is not in the "
                                 "database",
                                 path, q, id);
            }
            b->gt[q * b->k + i] = (iqdb_id)id;
        }
        b->gt_n[q] = b->k;
    }
    free(g);
    return EXIT_OK;
}

static double recall_of(bench *b, size_t q, const iqdb_hit *h, size_t n, size_t *denom) {
    size_t ng = b->gt_n[q], good = 0;
    *denom = ng;
    for (size_t i = 0; i < n && good < ng; i++) {
        int in = 0;
        for (size_t j = 0; j < ng && !in; j++) in = b->gt[q * b->k + j] == h[i].id;
        if (!in && ng) {
            double d = dist_to(b, q, h[i].id);
            /* a tie with the k-th true neighbour (same double-precision distance) */
            in = d <= b->gt_kth[q] + 1e-12 * fmax(1.0, fabs(b->gt_kth[q]));
        }
        good += (size_t)in;
    }
    return (double)good;
}

static int run_point(bench *b, const iqdb_search_params *p, point *pt) {
    double good = 0, total = 0, t_all = 0, dists = 0;
    cli_progress pg;
    char label[32];
    snprintf(label, sizeof label, "%s %s", pt->mode, pt->knob);
    cli_progress_start(&pg, label, b->nq);
    for (size_t q = 0; q < b->nq; q++) {
        size_t n, denom;
        iqdb_search_info info = {.struct_size = sizeof info};
        double t0 = cli_now();
        int rc = iqdb_search(b->db, b->q + q * b->dim, b->k, p, b->hits, &n, &info);
        double t = cli_now() - t0;
        if (rc != IQDB_OK) return cli_lib_error(b->db, rc, "bench: search");
        if (b->fill_gt) {
            for (size_t i = 0; i < n; i++) b->gt[q * b->k + i] = b->hits[i].id;
            b->gt_n[q] = n;
            b->gt_kth[q] = n ? dist_to(b, q, b->hits[n - 1].id) : INFINITY;
        }
        b->lat[q] = t;
        t_all += t;
        dists += (double)info.n_distances;
        good += recall_of(b, q, b->hits, n, &denom);
        total += (double)denom;
        if ((q & 63) == 0) cli_progress_update(&pg, q + 1);
    }
    cli_progress_end(&pg);
    qsort(b->lat, b->nq, sizeof *b->lat, cmp_double);
    pt->recall = total > 0 ? good / total : 1.0;
    pt->qps = t_all > 0 ? (double)b->nq / t_all : 0;
    pt->p50_ms = b->lat[(b->nq - 1) / 2] * 1e3;
    pt->p99_ms = b->lat[(size_t)((double)(b->nq - 1) * 0.99)] * 1e3;
    pt->mean_dist = dists / (double)b->nq;
    return EXIT_OK;
}

/* ---- outputs --------------------------------------------------------------------------------- */

static void write_csv(FILE *f, const point *pts, size_t n, size_t k) {
    fprintf(f, "mode,knob,value,k,recall,qps,p50_ms,p99_ms,distances_per_query\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s,%s,%u,%zu,%.6f,%.2f,%.4f,%.4f,%.1f\n", pts[i].mode, pts[i].knob,
                pts[i].value, k, pts[i].recall, pts[i].qps, pts[i].p50_ms, pts[i].p99_ms,
                pts[i].mean_dist);
}

static void write_json(FILE *f, const point *pts, size_t n, const bench *b, const char *index,
                       size_t n_base) {
    fprintf(f,
            "{\"k\":%zu,\"queries\":%zu,\"records\":%zu,\"dim\":%zu,\"metric\":\"%s\","
            "\"index\":\"%s\",\"points\":[",
            b->k, b->nq, n_base, b->dim, cli_metric_name(b->metric), index);
    for (size_t i = 0; i < n; i++)
        fprintf(f,
                "%s{\"mode\":\"%s\",\"knob\":\"%s\",\"value\":%u,\"recall\":%.6f,\"qps\":%.2f,"
                "\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"distances_per_query\":%.1f}",
                i ? "," : "", pts[i].mode, pts[i].knob, pts[i].value, pts[i].recall, pts[i].qps,
                pts[i].p50_ms, pts[i].p99_ms, pts[i].mean_dist);
    fprintf(f, "]}\n");
}

static void svg_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

/* Recall (x, linear) against QPS (y, log10), the exact scan as a separate marker. */
static void write_svg(FILE *f, const point *pts, size_t n, const char *title) {
    const double W = 720, H = 480, L = 80, R = 30, T = 50, B = 60;
    double xmin = 1, ymin = INFINITY, ymax = 0;
    for (size_t i = 0; i < n; i++) {
        if (pts[i].recall < xmin) xmin = pts[i].recall;
        if (pts[i].qps > 0 && pts[i].qps < ymin) ymin = pts[i].qps;
        if (pts[i].qps > ymax) ymax = pts[i].qps;
    }
    xmin = floor(xmin * 10 - 1e-9) / 10;
    if (xmin > 0.9) xmin = 0.9;
    if (xmin < 0) xmin = 0;
    if (!(ymin < INFINITY)) ymin = 1, ymax = 10;
    double ly0 = floor(log10(ymin)), ly1 = ceil(log10(ymax));
    if (ly1 <= ly0) ly1 = ly0 + 1;
#define PX(x) (L + ((x)-xmin) / (1 - xmin) * (W - L - R))
#define PY(y) (H - B - (log10(y) - ly0) / (ly1 - ly0) * (H - T - B))
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H);
    fprintf(f, "<text x=\"%.0f\" y=\"28\" font-size=\"15\" text-anchor=\"middle\">", W / 2);
    svg_text(f, title);
    fprintf(f, "</text>\n");
    /* grid and ticks */
    for (int i = 0; i <= 10; i++) {
        double x = xmin + (1 - xmin) * i / 10.0;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.2f</text>\n",
                PX(x), T, PX(x), H - B, PX(x), H - B + 18, x);
    }
    for (double e = ly0; e <= ly1 + 1e-9; e += 1) {
        for (int m = 1; m < 10; m++) {
            double y = pow(10, e) * m;
            if (y > pow(10, ly1) * 1.0001) break;
            fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"%s\"/>\n", L,
                    PY(y), W - R, PY(y), m == 1 ? "#bbb" : "#eee");
            if (m == 1)
                fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6,
                        PY(y) + 4, y);
        }
    }
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"black\"/>\n",
            L, T, W - L - R, H - T - B);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">recall@k</text>\n",
            (L + W - R) / 2, H - 18);
    fprintf(f,
            "<text x=\"18\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.0f)\">"
            "queries per second (log scale, one thread)</text>\n",
            (T + H - B) / 2, (T + H - B) / 2);
    /* the sweep as a line */
    fputs("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"", f);
    for (size_t i = 0; i < n; i++)
        if (strcmp(pts[i].mode, "exact") && pts[i].qps > 0)
            fprintf(f, "%.1f,%.1f ", PX(pts[i].recall), PY(pts[i].qps));
    fputs("\"/>\n", f);
    for (size_t i = 0; i < n; i++) {
        if (pts[i].qps <= 0) continue;
        int exact = !strcmp(pts[i].mode, "exact");
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", PX(pts[i].recall),
                PY(pts[i].qps), exact ? "#d62728" : "#1f77b4");
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">",
                PX(pts[i].recall) - 6, PY(pts[i].qps) - 6);
        if (exact || !strcmp(pts[i].knob, "-"))
            fprintf(f, "%s", pts[i].mode);
        else
            fprintf(f, "%s=%u", pts[i].knob, pts[i].value);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
}

/* ---- the command ----------------------------------------------------------------------------- */

static int build_db(const char *base, cli_format fmt, const iqdb_options *o, iqdb **db,
                    size_t *n_base) {
    cli_records r;
    cli_err e;
    if (cli_read_vectors(base, fmt, 0, &r, &e)) return cli_error(EXIT_INPUT, "%s", e.msg);
    iqdb_options oo = *o;
    oo.dim = (uint32_t)r.dim;
    int rc = iqdb_open(NULL, &oo, db);
    if (rc != IQDB_OK) {
        cli_records_free(&r);
        return cli_lib_error(NULL, rc, "bench: creating the in-memory database");
    }
    iqdb_id *ids = malloc((r.n ? r.n : 1) * sizeof *ids);
    if (!ids) {
        cli_records_free(&r);
        return cli_error(EXIT_FAIL, "out of memory");
    }
    for (size_t i = 0; i < r.n; i++) ids[i] = r.ids ? r.ids[i] : i;
    cli_progress pg;
    cli_progress_start(&pg, "build", r.n);
    double t0 = cli_now();
    const size_t chunk = 10000;
    for (size_t at = 0; at < r.n && rc == IQDB_OK; at += chunk) {
        size_t m = r.n - at < chunk ? r.n - at : chunk;
        rc = iqdb_upsert_batch(*db, m, ids + at, r.vecs + at * r.dim,
                               r.metas ? (const iqdb_meta *const *)(r.metas + at) : NULL);
        cli_progress_update(&pg, at + m);
    }
    cli_progress_end(&pg);
    if (rc == IQDB_OK && !g_cli.quiet && !g_cli.json)
        printf("built: %zu records of dim %zu in %.2f s\n", r.n, r.dim, cli_now() - t0);
    free(ids);
    *n_base = r.n;
    cli_records_free(&r);
    if (rc != IQDB_OK) return cli_lib_error(*db, rc, "bench: inserting the base vectors");
    return EXIT_OK;
}

int cli_bench(iqdb *db, int argc, char **argv) {
    const char *base = NULL, *queries = NULL, *gt = NULL, *filter_text = NULL, *csv = NULL,
               *json = NULL, *svg = NULL, *title = NULL, *v;
    cli_format bfmt = FMT_AUTO, qfmt = FMT_AUTO;
    uint32_t k = 10, max_q = 0, efs[64], probes[64];
    size_t n_ef = 0, n_pr = 0;
    iqdb_options o;
    iqdb_options_init(&o, 1, IQDB_METRIC_L2);
    o.threads = g_cli.threads;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint32_t *u = NULL;
        if (!strcmp(a, "--base"))
            CLI_VAL(base);
        else if (!strcmp(a, "--base-format")) {
            CLI_VAL(v);
            if ((bfmt = cli_format_parse(v)) == FMT_AUTO)
                return CLI_USAGE("--base-format: '%s'", v);
        } else if (!strcmp(a, "--queries"))
            CLI_VAL(queries);
        else if (!strcmp(a, "--format")) {
            CLI_VAL(v);
            if ((qfmt = cli_format_parse(v)) == FMT_AUTO) return CLI_USAGE("--format: '%s'", v);
        } else if (!strcmp(a, "--gt"))
            CLI_VAL(gt);
        else if (!strcmp(a, "--filter"))
            CLI_VAL(filter_text);
        else if (!strcmp(a, "--csv"))
            CLI_VAL(csv);
        else if (!strcmp(a, "--json-out"))
            CLI_VAL(json);
        else if (!strcmp(a, "--svg"))
            CLI_VAL(svg);
        else if (!strcmp(a, "--title"))
            CLI_VAL(title);
        else if (!strcmp(a, "-k") || !strcmp(a, "--k"))
            u = &k;
        else if (!strcmp(a, "--max-queries"))
            u = &max_q;
        else if (!strcmp(a, "--m"))
            u = &o.hnsw.m;
        else if (!strcmp(a, "--ef-construction"))
            u = &o.hnsw.ef_construction;
        else if (!strcmp(a, "--lists"))
            u = &o.ivf.n_lists;
        else if (!strcmp(a, "--metric")) {
            CLI_VAL(v);
            if (cli_metric_parse(v, &o.metric)) return CLI_USAGE("--metric: '%s'", v);
        } else if (!strcmp(a, "--index")) {
            CLI_VAL(v);
            if (cli_index_parse(v, &o.index)) return CLI_USAGE("--index: '%s'", v);
        } else if (!strcmp(a, "--ef")) {
            CLI_VAL(v);
            if (parse_list(v, efs, 64, &n_ef)) return CLI_USAGE("--ef: a list like 10,20,40");
        } else if (!strcmp(a, "--probes")) {
            CLI_VAL(v);
            if (parse_list(v, probes, 64, &n_pr)) return CLI_USAGE("--probes: a list like 1,2,4");
        } else
            return CLI_USAGE("bench: unknown argument '%s'", a);
        if (u) {
            CLI_VAL(v);
            if (cli_parse_u32(v, u)) return CLI_USAGE("%s: '%s' is not a number", a, v);
        }
    }
    if (!queries) return CLI_USAGE("bench: --queries FILE is required");
    if (k == 0 || k > 10000) return CLI_USAGE("-k: 1 .. 10000");
    int own = 0, code = EXIT_OK;
    size_t n_base = 0;
    if (base) {
        if ((code = build_db(base, bfmt, &o, &db, &n_base))) {
            iqdb_close(db);
            return code;
        }
        own = 1;
    }
    bench b;
    memset(&b, 0, sizeof b);
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    if (!base) n_base = (size_t)st.count;
    b.db = db, b.dim = st.dim, b.metric = st.metric, b.k = k;
    cli_records q;
    cli_err e;
    iqdb_filter *f = NULL;
    point pts[130];
    size_t np = 0;
    if (cli_read_vectors(queries, qfmt, st.dim, &q, &e)) {
        code = cli_error(EXIT_INPUT, "%s", e.msg);
        goto out_db;
    }
    if (max_q) cli_records_truncate(&q, max_q);
    if (q.n == 0) {
        code = cli_error(EXIT_INPUT, "%s: no queries", queries);
        goto out_q;
    }
    if (filter_text) {
        size_t off;
        int rc = iqdb_filter_parse(NULL, filter_text, strlen(filter_text), &f, &off);
        if (rc != IQDB_OK) {
            code = cli_lib_error(NULL, rc, "--filter");
            goto out_q;
        }
    }
    b.q = q.vecs, b.nq = q.n, b.filter = f;
    b.gt = malloc(q.n * k * sizeof *b.gt);
    b.gt_n = calloc(q.n, sizeof *b.gt_n);
    b.gt_kth = malloc(q.n * sizeof *b.gt_kth);
    b.vec = malloc(st.dim * sizeof *b.vec);
    b.hits = malloc(k * sizeof *b.hits);
    b.lat = malloc(q.n * sizeof *b.lat);
    if (!b.gt || !b.gt_n || !b.gt_kth || !b.vec || !b.hits || !b.lat) {
        code = cli_error(EXIT_FAIL, "out of memory");
        goto out;
    }
    if (gt && filter_text) {
        code = CLI_USAGE(
            "bench: --gt holds unfiltered neighbours; drop --gt to compute filtered ones");
        goto out;
    }
    if (gt) {
        if ((code = load_gt(&b, gt))) goto out;
        for (size_t i = 0; i < q.n; i++) b.gt_kth[i] = dist_to(&b, i, b.gt[i * k + b.gt_n[i] - 1]);
    }

    const char *index = cli_index_name(st.index);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    { /* warm-up */
        size_t n;
        for (size_t i = 0; i < q.n && i < 20; i++)
            iqdb_search(db, q.vecs + i * st.dim, k, &p, b.hits, &n, NULL);
    }
    /* The exact scan: its answers are the ground truth unless --gt gave one. */
    p.exact = 1;
    b.fill_gt = !gt;
    pts[np] = (point){"exact", "-", 0, 0, 0, 0, 0, 0};
    if ((code = run_point(&b, &p, &pts[np++]))) goto out;
    b.fill_gt = 0;
    p.exact = 0;
    if (st.index == IQDB_INDEX_HNSW) {
        static const uint32_t def[] = {10, 20, 40, 80, 160, 320};
        if (!n_ef) memcpy(efs, def, sizeof def), n_ef = 6;
        for (size_t i = 0; i < n_ef && !code; i++) {
            p.ef = efs[i];
            pts[np] = (point){"hnsw", "ef", efs[i], 0, 0, 0, 0, 0};
            code = run_point(&b, &p, &pts[np++]);
        }
    } else if (st.index == IQDB_INDEX_IVF) {
        static const uint32_t def[] = {1, 2, 4, 8, 16, 32, 64};
        if (!n_pr) memcpy(probes, def, sizeof def), n_pr = 7;
        for (size_t i = 0; i < n_pr && !code; i++) {
            p.n_probes = probes[i];
            pts[np] = (point){"ivf", "probes", probes[i], 0, 0, 0, 0, 0};
            code = run_point(&b, &p, &pts[np++]);
        }
    } /* a flat index answers exactly: the exact row is its row */
    if (code) goto out;

    if (g_cli.json) {
        write_json(stdout, pts, np, &b, index, n_base);
    } else {
        printf("%zu queries, k = %u, %zu records, dim %zu, %s, index %s%s%s\n", q.n, k, n_base,
               b.dim, cli_metric_name(b.metric), index, f ? ", filter " : "", f ? filter_text : "");
        printf("%-6s %-7s %9s %10s %9s %9s %12s\n", "mode", "param", "recall", "QPS", "p50 ms",
               "p99 ms", "dist/query");
        for (size_t i = 0; i < np; i++) {
            char param[24] = "-";
            if (strcmp(pts[i].knob, "-"))
                snprintf(param, sizeof param, "%s=%u", pts[i].knob, pts[i].value);
            printf("%-6s %-7s %9.4f %10.1f %9.3f %9.3f %12.0f\n", pts[i].mode, param, pts[i].recall,
                   pts[i].qps, pts[i].p50_ms, pts[i].p99_ms, pts[i].mean_dist);
        }
    }
    struct {
        const char *path;
        int kind;
    } outs[] = {{csv, 0}, {json, 1}, {svg, 2}};
    for (size_t i = 0; i < 3 && !code; i++) {
        if (!outs[i].path) continue;
        FILE *fo = fopen(outs[i].path, "w");
        if (!fo) {
            code = cli_error(EXIT_FAIL, "%s: cannot write", outs[i].path);
            break;
        }
        char t[256];
        snprintf(t, sizeof t, "%s: %s index, %zu records, k = %u", title ? title : "iqdb bench",
                 index, n_base, k);
        if (outs[i].kind == 0) write_csv(fo, pts, np, k);
        if (outs[i].kind == 1) write_json(fo, pts, np, &b, index, n_base);
        if (outs[i].kind == 2) write_svg(fo, pts, np, t);
        if (fclose(fo)) code = cli_error(EXIT_FAIL, "%s: write failed", outs[i].path);
    }
out:
    free(b.gt), free(b.gt_n), free(b.gt_kth), free(b.vec), free(b.hits), free(b.lat);
    iqdb_filter_destroy(f);
out_q:
    cli_records_free(&q);
out_db:
    if (own) iqdb_close(db);
    return code;
}
