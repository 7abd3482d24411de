// Reference harness: quantize rows with ggml's own quantizers (llama-quantize calls ggml_quantize_chunk).
// Built with -O2 -ffp-contract=off for a plain x86-64 target: no FMA contraction, IEEE float32 ops.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml-quants.h"
#include "ggml.h"
// usage: harness TYPE NROWS NCOLS in.f32 [imatrix.f32|-] out.bin
int main(int argc, char **argv) {
    const char *t = argv[1]; long nrows = atol(argv[2]), ncols = atol(argv[3]);
    float *x = malloc(sizeof(float)*nrows*ncols); FILE *f = fopen(argv[4], "rb"); fread(x, 4, nrows*ncols, f); fclose(f);
    float *qw = NULL;
    if (strcmp(argv[5], "-")) { qw = malloc(4*ncols); f = fopen(argv[5], "rb"); fread(qw, 4, ncols, f); fclose(f); }
    size_t cap = 8*nrows*ncols + 1024; char *out = malloc(cap); size_t n = 0;
    if (!strcmp(t, "q4_K")) n = quantize_q4_K(x, out, nrows, ncols, qw);
    else if (!strcmp(t, "q5_K")) n = quantize_q5_K(x, out, nrows, ncols, qw);
    else if (!strcmp(t, "q6_K")) n = quantize_q6_K(x, out, nrows, ncols, qw);
    else if (!strcmp(t, "q4_0")) n = quantize_q4_0(x, out, nrows, ncols, qw);
    else if (!strcmp(t, "q5_0")) n = quantize_q5_0(x, out, nrows, ncols, qw);
    else if (!strcmp(t, "q5_1")) n = quantize_q5_1(x, out, nrows, ncols, qw);
    else if (!strcmp(t, "q8_0")) n = quantize_q8_0(x, out, nrows, ncols, qw);
    else { fprintf(stderr, "type?\n"); return 2; }
    f = fopen(argv[6], "wb"); fwrite(out, 1, n, f); fclose(f); return 0;
}
