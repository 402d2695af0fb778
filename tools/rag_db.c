/* rag_db.c: the SQLite side of a RAG index: creating and checking the schema, the writer lock,
 * the recorded settings, and replacing one document (doc row, chunks, FTS rows through the
 * triggers, vectors) per transaction. See rag_db.h for the schema. Search lives in rag_search.c.
 * Library code: errors through rtr_err, nothing printed.
 */
#include "rag_db.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

enum {
    S_FIND,
    S_TOUCH,
    S_DEL_VECS,
    S_DEL_CHUNKS,
    S_DEL_DOC,
    S_INS_DOC,
    S_MAX_CHUNK,
    S_INS_CHUNK,
    S_INS_VEC,
    S_COUNT
};

struct rag_db {
    sqlite3 *db;
    int lock_fd; /* -1 for readers */
    int mode;
    char *path;
    sqlite3_stmt *st[S_COUNT];
    rag_db *second; /* a read-only connection for work beside this one, opened on first use */
};

static const char *const SQL[S_COUNT] = {
    [S_FIND] = "SELECT id, size, mtime_ns, hash FROM docs WHERE path = ?1",
    [S_TOUCH] = "UPDATE docs SET size = ?2, mtime_ns = ?3 WHERE id = ?1",
    [S_DEL_VECS] = "DELETE FROM vecs WHERE doc_id = ?1",
    [S_DEL_CHUNKS] = "DELETE FROM chunks WHERE doc_id = ?1",
    [S_DEL_DOC] = "DELETE FROM docs WHERE id = ?1",
    [S_INS_DOC] = "INSERT INTO docs(path, size, mtime_ns, hash, kind, n_chunks, indexed_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_MAX_CHUNK] = "SELECT coalesce(max(id), 0) FROM chunks",
    [S_INS_CHUNK] =
        "INSERT INTO chunks(id, doc_id, ord, byte_start, byte_end, line_start, line_end, "
        "n_tokens, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_INS_VEC] =
        "INSERT INTO vecs(doc_id, chunk0, n, dim, scales, codes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

static const char SCHEMA[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE docs(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, hash BLOB NOT NULL, kind TEXT NOT NULL, n_chunks INTEGER NOT NULL,"
    " indexed_at INTEGER NOT NULL);"
    "CREATE TABLE chunks(id INTEGER PRIMARY KEY,"
    " doc_id INTEGER NOT NULL REFERENCES docs(id) ON DELETE CASCADE, ord INTEGER NOT NULL,"
    " byte_start INTEGER NOT NULL, byte_end INTEGER NOT NULL, line_start INTEGER NOT NULL,"
    " line_end INTEGER NOT NULL, n_tokens INTEGER NOT NULL, text TEXT NOT NULL);"
    "CREATE INDEX chunks_doc ON chunks(doc_id);"
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id',"
    " tokenize='porter unicode61 remove_diacritics 2');"
    "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
    " INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;"
    "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN"
    " INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END;"
    "CREATE TABLE vecs(doc_id INTEGER PRIMARY KEY REFERENCES docs(id) ON DELETE CASCADE,"
    " chunk0 INTEGER NOT NULL, n INTEGER NOT NULL, dim INTEGER NOT NULL, scales BLOB NOT NULL,"
    " codes BLOB NOT NULL);"
    "INSERT INTO meta VALUES ('schema', '1');"
    "PRAGMA user_version = 1;";

static int code_of(int sqlite_rc) {
    switch (sqlite_rc & 0xff) {
    case SQLITE_FULL: return RTR_ENOSPC;
    case SQLITE_NOMEM: return RTR_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return RTR_EFORMAT;
    default: return RTR_EIO;
    }
}

static int dberr(rag_db *db, rtr_err *err, const char *what) {
    int ec = sqlite3_extended_errcode(db->db);
    return rtr_seterr(err, code_of(ec), "%s: %s: %s", db->path, what, sqlite3_errmsg(db->db));
}

static int exec(rag_db *db, const char *sql, rtr_err *err) {
    if (sqlite3_exec(db->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return dberr(db, err, "query failed");
    return 0;
}

/* The prepared statement i, reset and unbound; NULL (err set) on failure. */
static sqlite3_stmt *stmt(rag_db *db, int i, rtr_err *err) {
    if (!db->st[i] &&
        sqlite3_prepare_v3(db->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &db->st[i], NULL)) {
        dberr(db, err, "prepare");
        return NULL;
    }
    sqlite3_reset(db->st[i]);
    sqlite3_clear_bindings(db->st[i]);
    return db->st[i];
}

static int64_t one_int(rag_db *db, const char *sql, int64_t dflt) {
    sqlite3_stmt *s;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db->db, sql, -1, &s, NULL) != SQLITE_OK) return dflt;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int take_lock(rag_db *db, rtr_err *err) {
    size_t n = strlen(db->path);
    char *lp = malloc(n + 6);
    if (!lp) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    memcpy(lp, db->path, n);
    memcpy(lp + n, ".lock", 6);
    db->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int rc = 0;
    if (db->lock_fd < 0)
        rc = rtr_seterr(err, RTR_EIO, "%s: %s", lp, strerror(errno));
    else if (flock(db->lock_fd, LOCK_EX | LOCK_NB)) {
        if (errno == EWOULDBLOCK)
            rc = rtr_seterr(err, RTR_EIO, "%s is being indexed by another process (lock %s)",
                            db->path, lp);
        else
            rc = rtr_seterr(err, RTR_EIO, "%s: cannot lock: %s", lp, strerror(errno));
        close(db->lock_fd);
        db->lock_fd = -1;
    }
    free(lp);
    return rc;
}

/* Creates the schema in an empty file, or checks an existing one. */
static int check_schema(rag_db *db, rtr_err *err) {
    int64_t uv = one_int(db, "PRAGMA user_version", -1);
    int64_t ntab = one_int(db, "SELECT count(*) FROM sqlite_master", -1);
    if (uv < 0 || ntab < 0) {
        int ec = sqlite3_extended_errcode(db->db);
        if ((ec & 0xff) == SQLITE_NOTADB)
            return rtr_seterr(err, RTR_EFORMAT, "%s: not a rotor index (not an SQLite database)",
                              db->path);
        return dberr(db, err, "cannot read");
    }
    if (uv == 0 && ntab == 0) {
        if (db->mode != RAG_DB_WRITE)
            return rtr_seterr(err, RTR_EFORMAT, "%s: empty index (run rotor rag-index DIR --db %s)",
                              db->path, db->path);
        if (exec(db, "PRAGMA page_size = 16384", err)) return err ? err->code : RTR_EIO;
        if (exec(db, "PRAGMA journal_mode = WAL", err)) return err ? err->code : RTR_EIO;
        if (exec(db, "BEGIN IMMEDIATE", err)) return err ? err->code : RTR_EIO;
        if (sqlite3_exec(db->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
            int rc = dberr(db, err, "creating the schema");
            sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        return exec(db, "COMMIT", err);
    }
    if (uv > RAG_SCHEMA_VERSION)
        return rtr_seterr(err, RTR_EFORMAT, "%s: index schema %lld is newer than this rotor's (%d)",
                          db->path, (long long)uv, RAG_SCHEMA_VERSION);
    if (uv != RAG_SCHEMA_VERSION ||
        one_int(db,
                "SELECT count(*) FROM sqlite_master WHERE name IN ('meta','docs','chunks',"
                "'chunks_fts','vecs')",
                0) != 5)
        return rtr_seterr(err, RTR_EFORMAT, "%s: not a rotor index", db->path);
    return 0;
}

int rag_db_open(rag_db **out, const char *path, int mode, rtr_err *err) {
    *out = NULL;
    rag_db *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    }
    db->lock_fd = -1;
    db->mode = mode;
    int rc;
    if (mode == RAG_DB_WRITE && (rc = take_lock(db, err))) goto fail;
    if (mode != RAG_DB_WRITE && access(path, R_OK)) {
        rc = rtr_seterr(err, RTR_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    int flags =
        mode == RAG_DB_WRITE ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path, &db->db, flags, NULL) != SQLITE_OK) {
        rc = rtr_seterr(err, RTR_EIO, "%s: %s", path,
                        db->db ? sqlite3_errmsg(db->db) : "cannot open");
        goto fail;
    }
    sqlite3_extended_result_codes(db->db, 1);
    sqlite3_busy_timeout(db->db, 10000);
    if ((rc = check_schema(db, err))) goto fail;
    if (mode == RAG_DB_WRITE) {
        /* NORMAL with WAL: a crash (even power loss) keeps the file consistent; at worst the
         * last documents are indexed again */
        if ((rc = exec(db,
                       "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                       "PRAGMA foreign_keys = ON",
                       err)))
            goto fail;
    } else {
        exec(db, "PRAGMA mmap_size = 4294967296", NULL); /* the vector scan reads pages in place */
    }
    *out = db;
    return 0;
fail:
    rag_db_close(db);
    return rc;
}

void rag_db_close(rag_db *db) {
    if (!db) return;
    rag_db_close(db->second);
    for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(db->st[i]);
    /* a writer leaves everything in the main file (readers may keep part of the WAL alive) */
    if (db->db && db->mode == RAG_DB_WRITE)
        sqlite3_exec(db->db, "PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    if (db->db) sqlite3_close(db->db);
    if (db->lock_fd >= 0) close(db->lock_fd); /* releases the flock */
    free(db->path);
    free(db);
}

int rag_db_second(rag_db *db, rag_db **out, rtr_err *err) {
    if (!db->second) {
        int rc = rag_db_open(&db->second, db->path, RAG_DB_READ, err);
        if (rc) return rc;
    }
    *out = db->second;
    return 0;
}

struct sqlite3 *rag_db_sqlite(rag_db *db) {
    return db->db;
}
const char *rag_db_path(const rag_db *db) { return db->path; }

/* ==== settings ==== */

static int meta_get(rag_db *db, const char *key, char *buf, size_t cap, rtr_err *err) {
    sqlite3_stmt *s;
    buf[0] = 0;
    if (sqlite3_prepare_v2(db->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL))
        return dberr(db, err, "reading settings");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(s, 0);
        if (v) snprintf(buf, cap, "%s", v);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = dberr(db, err, "reading settings");
    }
    sqlite3_finalize(s);
    return rc;
}

static int meta_set(rag_db *db, const char *key, const char *val, rtr_err *err) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", -1,
                           &s, NULL))
        return dberr(db, err, "writing settings");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, val, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : dberr(db, err, "writing settings");
    sqlite3_finalize(s);
    return rc;
}

int rag_db_conf_get(rag_db *db, rag_db_conf *c, rtr_err *err) {
    memset(c, 0, sizeof *c);
    char dim[32];
    int rc;
    if ((rc = meta_get(db, "embed_model", c->model_id, sizeof c->model_id, err)) ||
        (rc = meta_get(db, "embed_path", c->model_path, sizeof c->model_path, err)) ||
        (rc = meta_get(db, "embed_dim", dim, sizeof dim, err)) ||
        (rc = meta_get(db, "chunker", c->chunker, sizeof c->chunker, err)))
        return rc;
    long d = strtol(dim, NULL, 10);
    c->dim = d > 0 && d < (1 << 20) ? (int)d : 0;
    return 0;
}

int rag_db_conf_apply(rag_db *db, const rag_db_conf *c, rtr_err *err) {
    int rc = exec(db, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    rag_db_conf old;
    int wiped = 0;
    if ((rc = rag_db_conf_get(db, &old, err))) goto fail;
    if (strcmp(old.model_id, c->model_id) || old.dim != c->dim || strcmp(old.chunker, c->chunker)) {
        wiped = one_int(db, "SELECT count(*) FROM docs", 0) > 0;
        if ((rc = exec(db, "DELETE FROM vecs; DELETE FROM chunks; DELETE FROM docs;", err)))
            goto fail;
        char dim[32];
        snprintf(dim, sizeof dim, "%d", c->dim);
        if ((rc = meta_set(db, "embed_model", c->model_id, err)) ||
            (rc = meta_set(db, "embed_dim", dim, err)) ||
            (rc = meta_set(db, "chunker", c->chunker, err)))
            goto fail;
    }
    if (strcmp(old.model_path, c->model_path) &&
        (rc = meta_set(db, "embed_path", c->model_path, err)))
        goto fail;
    if ((rc = exec(db, "COMMIT", err))) goto fail;
    return wiped;
fail:
    sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ==== documents ==== */

int rag_db_doc_find(rag_db *db, const char *path, rag_doc_state *st, rtr_err *err) {
    sqlite3_stmt *s = stmt(db, S_FIND, err);
    if (!s) return err ? err->code : RTR_EIO;
    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return 0;
    }
    if (rc != SQLITE_ROW) return dberr(db, err, "looking up a document");
    memset(st, 0, sizeof *st);
    st->id = sqlite3_column_int64(s, 0);
    st->size = sqlite3_column_int64(s, 1);
    st->mtime_ns = sqlite3_column_int64(s, 2);
    if (sqlite3_column_bytes(s, 3) == 16) memcpy(st->hash, sqlite3_column_blob(s, 3), 16);
    sqlite3_reset(s);
    return 1;
}

static int step_done(rag_db *db, sqlite3_stmt *s, rtr_err *err, const char *what) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return dberr(db, err, what);
    sqlite3_reset(s);
    return 0;
}

int rag_db_doc_touch(rag_db *db, int64_t id, int64_t size, int64_t mtime_ns, rtr_err *err) {
    sqlite3_stmt *s = stmt(db, S_TOUCH, err);
    if (!s) return err ? err->code : RTR_EIO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, size);
    sqlite3_bind_int64(s, 3, mtime_ns);
    return step_done(db, s, err, "updating a document");
}

/* Deletes a document's rows inside the caller's transaction. */
static int remove_rows(rag_db *db, int64_t id, rtr_err *err) {
    static const int order[] = {S_DEL_VECS, S_DEL_CHUNKS, S_DEL_DOC};
    for (int k = 0; k < 3; k++) {
        sqlite3_stmt *s = stmt(db, order[k], err);
        if (!s) return err ? err->code : RTR_EIO;
        sqlite3_bind_int64(s, 1, id);
        int rc = step_done(db, s, err, "removing a document");
        if (rc) return rc;
    }
    return 0;
}

int rag_db_doc_remove(rag_db *db, int64_t id, rtr_err *err) {
    int rc = exec(db, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    if ((rc = remove_rows(db, id, err)) || (rc = exec(db, "COMMIT", err))) {
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return 0;
}

float rag_quant_i8(const float *v, int dim, int8_t *codes) {
    float amax = 0;
    for (int i = 0; i < dim; i++) {
        float a = fabsf(v[i]);
        if (a > amax) amax = a; /* NaN never wins this comparison */
    }
    if (!(amax > 0) || !isfinite(amax)) {
        memset(codes, 0, (size_t)dim);
        return 0;
    }
    float inv = 127.0f / amax;
    for (int i = 0; i < dim; i++) {
        float x = v[i] * inv;
        if (x != x) x = 0;
        codes[i] = (int8_t)lrintf(x > 127 ? 127 : x < -127 ? -127 : x);
    }
    return amax / 127.0f;
}

int rag_db_doc_put(rag_db *db, const char *path, const char *kind, int64_t size, int64_t mtime_ns,
                   const uint8_t hash[16], const rag_text *t, const rag_chunk *ch, int n,
                   const float *vecs, int dim, rtr_err *err) {
    int8_t *codes = NULL;
    float *scales = NULL;
    if (vecs && dim > 0 && n > 0) {
        codes = malloc((size_t)n * (size_t)dim);
        scales = malloc((size_t)n * sizeof *scales);
        if (!codes || !scales) {
            free(codes);
            free(scales);
            return rtr_seterr(err, RTR_ENOMEM, "out of memory storing %s", path);
        }
        for (int i = 0; i < n; i++)
            scales[i] = rag_quant_i8(vecs + (size_t)i * dim, dim, codes + (size_t)i * dim);
    }
    int rc = exec(db, "BEGIN IMMEDIATE", err);
    if (rc) goto out;
    rag_doc_state old;
    int found = rag_db_doc_find(db, path, &old, err);
    if (found < 0) {
        rc = found;
        goto fail;
    }
    if (found && (rc = remove_rows(db, old.id, err))) goto fail;

    sqlite3_stmt *s = stmt(db, S_INS_DOC, err);
    if (!s) {
        rc = err ? err->code : RTR_EIO;
        goto fail;
    }
    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, size);
    sqlite3_bind_int64(s, 3, mtime_ns);
    sqlite3_bind_blob(s, 4, hash, 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 6, n);
    sqlite3_bind_int64(s, 7, (int64_t)time(NULL));
    if ((rc = step_done(db, s, err, "adding a document"))) goto fail;
    int64_t doc = sqlite3_last_insert_rowid(db->db);

    /* consecutive chunk ids, so the document's vectors can be one row */
    if (!(s = stmt(db, S_MAX_CHUNK, err))) {
        rc = err ? err->code : RTR_EIO;
        goto fail;
    }
    if (sqlite3_step(s) != SQLITE_ROW) {
        rc = dberr(db, err, "numbering chunks");
        goto fail;
    }
    int64_t base = sqlite3_column_int64(s, 0) + 1;
    sqlite3_reset(s);
    for (int i = 0; i < n; i++) {
        if (!(s = stmt(db, S_INS_CHUNK, err))) {
            rc = err ? err->code : RTR_EIO;
            goto fail;
        }
        sqlite3_bind_int64(s, 1, base + i);
        sqlite3_bind_int64(s, 2, doc);
        sqlite3_bind_int(s, 3, i);
        sqlite3_bind_int64(s, 4, ch[i].byte_start);
        sqlite3_bind_int64(s, 5, ch[i].byte_end);
        sqlite3_bind_int(s, 6, ch[i].line_start);
        sqlite3_bind_int(s, 7, ch[i].line_end);
        sqlite3_bind_int(s, 8, ch[i].n_tokens);
        sqlite3_bind_text(s, 9, t->text + ch[i].start, (int)(ch[i].end - ch[i].start),
                          SQLITE_STATIC);
        if ((rc = step_done(db, s, err, "adding a chunk"))) goto fail;
    }
    if (codes) {
        if (!(s = stmt(db, S_INS_VEC, err))) {
            rc = err ? err->code : RTR_EIO;
            goto fail;
        }
        sqlite3_bind_int64(s, 1, doc);
        sqlite3_bind_int64(s, 2, base);
        sqlite3_bind_int(s, 3, n);
        sqlite3_bind_int(s, 4, dim);
        sqlite3_bind_blob64(s, 5, scales, (sqlite3_uint64)n * sizeof *scales, SQLITE_STATIC);
        sqlite3_bind_blob64(s, 6, codes, (sqlite3_uint64)n * (sqlite3_uint64)dim, SQLITE_STATIC);
        if ((rc = step_done(db, s, err, "adding vectors"))) goto fail;
    }
    rc = exec(db, "COMMIT", err);
    if (!rc) goto out;
fail:
    sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
out:
    free(codes);
    free(scales);
    return rc;
}

int rag_db_doc_list(rag_db *db, rag_doc_ref **out, size_t *n, rtr_err *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db->db, "SELECT id, path FROM docs ORDER BY path", -1, &s, NULL))
        return dberr(db, err, "listing documents");
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            rag_doc_ref *r = realloc(*out, cap * sizeof *r);
            if (!r) {
                rc = SQLITE_NOMEM;
                break;
            }
            *out = r;
        }
        const char *p = (const char *)sqlite3_column_text(s, 1);
        (*out)[*n].id = sqlite3_column_int64(s, 0);
        if (!((*out)[*n].path = strdup(p ? p : ""))) {
            rc = SQLITE_NOMEM;
            break;
        }
        (*n)++;
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE) return 0;
    rag_doc_refs_free(*out, *n);
    *out = NULL;
    *n = 0;
    if (rc == SQLITE_NOMEM) return rtr_seterr(err, RTR_ENOMEM, "out of memory listing documents");
    return dberr(db, err, "listing documents");
}

void rag_doc_refs_free(rag_doc_ref *r, size_t n) {
    for (size_t i = 0; i < n; i++) free(r[i].path);
    free(r);
}

int rag_db_stats_get(rag_db *db, rag_db_stats *st, rtr_err *err) {
    st->docs = one_int(db, "SELECT count(*) FROM docs", -1);
    st->chunks = one_int(db, "SELECT count(*) FROM chunks", -1);
    st->vectors = one_int(db, "SELECT coalesce(sum(n), 0) FROM vecs", -1);
    if (st->docs < 0 || st->chunks < 0 || st->vectors < 0) return dberr(db, err, "counting");
    return 0;
}
