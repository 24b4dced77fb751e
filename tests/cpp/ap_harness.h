// Oracle cases for tests/_aptypes.py: one ap_fixed conversion each, bits in and out as two 64-bit words.
// The generated units instantiate these templates for a list of (source, destination) ap_fixed types.
#ifndef QFLOW_AP_HARNESS_H
#define QFLOW_AP_HARNESS_H
#include <ap_fixed.h>
#include <cstdio>
#include <cstring>
typedef unsigned long long u64;

template <class S, int WS, class D, int WD>
static void cast_case(u64 hi, u64 lo) {
    ap_uint<128> bits = hi;
    bits <<= 64;
    bits |= ap_uint<128>(lo);
    S s;
    s.range(WS - 1, 0) = bits.range(WS - 1, 0);
    D d = s;
    ap_uint<128> out = 0;
    out.range(WD - 1, 0) = d.range(WD - 1, 0);
    printf("%llx %llx\n", (u64)out.range(127, 64).to_uint64(), (u64)out.range(63, 0).to_uint64());
}

template <class D, int WD>
static void double_case(u64 bits) {
    double x;
    memcpy(&x, &bits, sizeof x);
    D d = x;
    ap_uint<128> out = 0;
    out.range(WD - 1, 0) = d.range(WD - 1, 0);
    printf("%llx %llx\n", (u64)out.range(127, 64).to_uint64(), (u64)out.range(63, 0).to_uint64());
}

#endif
