// SPDX-License-Identifier: Apache-2.0
// Non-x86 builds: no SIMD kernel tables, only the scalar reference backend.
#include "engine/kernels/isa_kernels.h"

namespace weft::kernels {
const IsaKernels* Avx2Kernels() { return nullptr; }
const IsaKernels* Avx512Kernels() { return nullptr; }
const IsaKernels* Avx512VnniKernels() { return nullptr; }
}  // namespace weft::kernels
