/* The f32 FMA peak the README's ratios are read against: 24 independent AVX-512 FMA chains
 * per thread (enough to cover the FMA latency on two ports), on one and on two threads.
 *
 *     gcc -O2 -mavx512f -mfma fma_peak.c -o fma_peak -lpthread && ./fma_peak
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define STEPS 200000000L /* FMAs per thread, in groups of 24 */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *run(void *out) {
    __m512 acc[24];
    __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(0.999f);
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < STEPS / 24; k++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
    }
    float s = 0;
    for (int i = 0; i < 24; i++) s += _mm512_reduce_add_ps(acc[i]);
    *(float *)out = s; /* keeps the loop from being optimised away */
    return 0;
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) {
        pthread_t t[2];
        float out[2];
        double start = now();
        for (int i = 0; i < threads; i++) pthread_create(&t[i], 0, run, &out[i]);
        for (int i = 0; i < threads; i++) pthread_join(t[i], 0);
        double flops = (double)threads * (STEPS / 24) * 24 * 16 * 2;
        printf("%d thread(s): %.1f GFLOP/s\n", threads, flops / (now() - start) / 1e9);
    }
    return 0;
}
