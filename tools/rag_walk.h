/* rag_walk.h: finding the files rag-index indexes and turning each into text.
 *
 * rag_walk lists the regular files under one root (a folder or a single file), sorted, skipping
 * hidden entries, .git and the like, files that are binary by their name, files over a size
 * limit, and anything that would leave the root: a symlink is followed only when its target lies
 * inside the root, each folder and file is visited once (by device and inode), so link loops end.
 * rag_extract reads one listed file and gives its text (HTML tags stripped, invalid UTF-8
 * replaced), or says why it was skipped.
 */
#ifndef ROTOR_RAG_WALK_H
#define ROTOR_RAG_WALK_H

#include "rag_chunk.h"

/* Why a file was left out. */
enum {
    RAG_SKIP_HIDDEN, /* hidden file or folder, .git, node_modules ... */
    RAG_SKIP_BINARY, /* binary by name or by content */
    RAG_SKIP_LARGE, /* larger than the size limit */
    RAG_SKIP_OUTSIDE, /* a symlink leading outside the root, or dangling */
    RAG_SKIP_DUP, /* already visited under another name (link, hard link) */
    RAG_SKIP_SPECIAL, /* device, fifo, socket */
    RAG_SKIP_UNREADABLE, /* permission denied, vanished, or an I/O error */
    RAG_SKIP_N
};
const char *rag_skip_name(int why);

/* How a file's bytes become text. */
enum { RAG_KIND_TEXT, RAG_KIND_MARKDOWN, RAG_KIND_CODE, RAG_KIND_HTML };
const char *rag_kind_name(int kind);

typedef struct {
    char *path; /* absolute, through the (real) root */
    int64_t size, mtime_ns;
    int kind;
} rag_file;

typedef struct rag_walk_set rag_walk_set; /* dev/ino pairs already visited, across roots */

typedef struct {
    uint64_t max_bytes; /* files larger are skipped (0: 16 MiB) */
    const char *const *exclude; /* absolute real paths never listed (the database files) */
    int n_exclude;
} rag_walk_opts;

/* Appends the files under root to *files (*n, *cap as for a growing array) and adds to
 * skipped[RAG_SKIP_N]. visited may be shared across roots (create with rag_walk_set_new).
 * A root that does not exist or cannot be read is an error; entries under it are counted. */
int rag_walk(const char *root, const rag_walk_opts *o, rag_walk_set *visited, rag_file **files,
             size_t *n, size_t *cap, uint64_t skipped[RAG_SKIP_N], rtr_err *err);
rag_walk_set *rag_walk_set_new(void);
void rag_walk_set_free(rag_walk_set *s);
void rag_files_free(rag_file *f, size_t n);

/* Reads path into out. Returns 1 when the file was indexed-ready, 0 when it is to be skipped
 * (*why set), or a negative RTR_E*. *size and *mtime_ns get the file's state as read (stable
 * across the read; a file that keeps changing is read up to 3 times, then taken as last read
 * with *unstable set), hash gets 16 bytes of content hash. */
int rag_extract(const char *path, int kind, uint64_t max_bytes, rag_text *out, int64_t *size,
                int64_t *mtime_ns, uint8_t hash[16], int *unstable, int *why, rtr_err *err);

/* Converts any bytes to valid UTF-8 with U+FFFD for each invalid sequence; map (may be NULL)
 * gets the offsets back into s. Returns the new NUL-terminated string (malloc) or NULL on OOM;
 * *n_replaced counts the replacements. */
char *rag_utf8_clean(const char *s, size_t len, size_t *out_len, rag_map *map, size_t *n_replaced);

/* HTML to text: tags, comments, <script> and <style> dropped, entities decoded, block elements
 * turned into line breaks. map gets the offsets back into s. NULL on OOM. */
char *rag_html_strip(const char *s, size_t len, size_t *out_len, rag_map *map);

void rag_map_free(rag_map *m);
size_t rag_map_apply(const rag_map *m, size_t o);

#endif
