// SPDX-License-Identifier: Apache-2.0
// The SIMD CPU backend: matmuls through an ISA's kernel table, parallel over output rows on an
// owned ThreadPool; the small ops in float. Used by one thread at a time; ops block until done.
#pragma once

#include <memory>

#include "engine/kernels/isa_kernels.h"
#include "engine/kernels/kernels.h"

namespace weft::kernels {

std::unique_ptr<Backend> NewCpuBackend(Isa isa, const IsaKernels* kernels, int n_threads);

}  // namespace weft::kernels
