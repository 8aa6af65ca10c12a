// SPDX-License-Identifier: Apache-2.0
// The scalar reference backend: the oracle every other backend is tested against. Plain loops,
// weights dequantized row by row and dotted in double precision, single-threaded.
#pragma once

#include <memory>

#include "engine/kernels/kernels.h"

namespace weft::kernels {

std::unique_ptr<Backend> NewReferenceBackend();

// Rotation frequency of pair i (0 <= i < rope_dim / 2) after freq_factors, Llama-3 or linear
// scaling, in radians per position; computed in double exactly as HF's
// _compute_llama3_parameters (llama3) and llama.cpp's theta / freq_factor (freq_factors).
double RopeInvFreq(const RopeParams& p, int i);

}  // namespace weft::kernels
