/* The f32 FMA peak the README's ratios are read against: independent FMA chains per thread
 * (enough to cover the FMA latency on two ports, and no more than the vector registers
 * hold), on one and on two threads. AVX-512 (24 chains of 16 lanes) where the compiler
 * targets it, else AVX2 (12 chains of 8 lanes: 24 ymm chains would not fit the 16
 * registers, and the spills halved the figure).
 *
 *     gcc -O2 -march=native fma_peak.c -o fma_peak -lpthread && ./fma_peak
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#ifdef __AVX512F__
#define CHAINS 24
#define LANES 16
typedef __m512 vec;
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define STORE _mm512_storeu_ps
#else
#define CHAINS 12
#define LANES 8
typedef __m256 vec;
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define STORE _mm256_storeu_ps
#endif

#define STEPS 240000000L /* FMAs per thread, in groups of CHAINS */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *run(void *out) {
    vec acc[CHAINS];
    vec b = SET1(1.0000001f), c = SET1(0.999f);
    for (int i = 0; i < CHAINS; i++) acc[i] = SET1((float)i);
    for (long k = 0; k < STEPS / CHAINS; k++) {
#pragma GCC unroll 24
        for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], b, c);
    }
    float s = 0, lanes[LANES];
    for (int i = 0; i < CHAINS; i++) {
        STORE(lanes, acc[i]);
        for (int l = 0; l < LANES; l++) s += lanes[l];
    }
    *(float *)out = s; /* every lane used: keeps the loop vector and from being optimised away */
    return 0;
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) {
        pthread_t t[2];
        float out[2];
        double start = now();
        for (int i = 0; i < threads; i++) pthread_create(&t[i], 0, run, &out[i]);
        for (int i = 0; i < threads; i++) pthread_join(t[i], 0);
        double flops = (double)threads * (STEPS / CHAINS) * CHAINS * LANES * 2;
        printf("%d thread(s): %.1f GFLOP/s (%d-lane FMA)\n", threads,
               flops / (now() - start) / 1e9, LANES);
    }
    return 0;
}
