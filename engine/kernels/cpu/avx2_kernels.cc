// SPDX-License-Identifier: Apache-2.0
// The SIMD kernel table for AVX2 + FMA + F16C (this file is compiled with those -m flags;
// only call it after cpuid says the CPU has them).
#define WEFT_SIMD_NS avx2
#define WEFT_SIMD_TABLE Avx2Kernels
#include "engine/kernels/cpu/simd_kernels.inc"
