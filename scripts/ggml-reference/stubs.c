#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include "ggml.h"
#include "ggml-common.h"
void ggml_abort(const char *file, int line, const char *fmt, ...) { fprintf(stderr, "abort %s:%d\n", file, line); abort(); }
const char *ggml_type_name(enum ggml_type t) { (void)t; return "?"; }
static size_t bs(enum ggml_type t, long *blk) {
    switch (t) {
    case GGML_TYPE_Q4_K: *blk = QK_K; return sizeof(block_q4_K);
    case GGML_TYPE_Q5_K: *blk = QK_K; return sizeof(block_q5_K);
    case GGML_TYPE_Q6_K: *blk = QK_K; return sizeof(block_q6_K);
    case GGML_TYPE_Q4_0: *blk = QK4_0; return sizeof(block_q4_0);
    case GGML_TYPE_Q5_0: *blk = QK5_0; return sizeof(block_q5_0);
    case GGML_TYPE_Q5_1: *blk = QK5_1; return sizeof(block_q5_1);
    case GGML_TYPE_Q8_0: *blk = QK8_0; return sizeof(block_q8_0);
    default: abort();
    }
}
size_t ggml_type_size(enum ggml_type t) { long b; return bs(t, &b); }
size_t ggml_row_size(enum ggml_type t, int64_t ne) { long b; size_t s = bs(t, &b); return s * ne / b; }
