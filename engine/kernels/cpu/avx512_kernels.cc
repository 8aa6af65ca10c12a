// SPDX-License-Identifier: Apache-2.0
// The SIMD kernel table for AVX-512 F/BW/VL (this file is compiled with those -m flags;
// only call it after cpuid says the CPU has them).
#define WEFT_SIMD_NS avx512
#define WEFT_SIMD_TABLE Avx512Kernels
#include "engine/kernels/cpu/simd_kernels.inc"
