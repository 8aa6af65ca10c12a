// SPDX-License-Identifier: Apache-2.0
// Backend::Create and run-time ISA detection (cpuid through __builtin_cpu_supports).
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "base/check.h"
#include "engine/kernels/cpu/cpu_backend.h"
#include "engine/kernels/isa_kernels.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/reference/reference_backend.h"

namespace weft::kernels {
namespace {

bool CpuHasAvx2() {
#if defined(__x86_64__) || defined(__i386__)
  // F16C through cpuid itself: clang's __builtin_cpu_supports does not know "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false;
#endif
}

bool CpuHasAvx512() {
#if defined(__x86_64__) || defined(__i386__)
  return CpuHasAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

bool CpuHasAvx512Vnni() {
#if defined(__x86_64__) || defined(__i386__)
  return CpuHasAvx512() && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

// The kernel table for an ISA level on this CPU, or null.
const IsaKernels* KernelsFor(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return nullptr;
    case Isa::kAvx2:
      return CpuHasAvx2() ? Avx2Kernels() : nullptr;
    case Isa::kAvx512:
      if (CpuHasAvx512Vnni() && Avx512VnniKernels() != nullptr) return Avx512VnniKernels();
      return CpuHasAvx512() ? Avx512Kernels() : nullptr;
  }
  return nullptr;
}

}  // namespace

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

bool IsaSupported(Isa isa) { return isa == Isa::kScalar || KernelsFor(isa) != nullptr; }

Isa BestIsa() {
  if (IsaSupported(Isa::kAvx512)) return Isa::kAvx512;
  if (IsaSupported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

std::unique_ptr<Backend> Backend::Create(const BackendOptions& options) {
  WEFT_CHECK(options.n_threads >= 1);
  WEFT_CHECK(IsaSupported(options.isa));
  if (options.isa == Isa::kScalar) return NewReferenceBackend();
  return NewCpuBackend(options.isa, KernelsFor(options.isa), options.n_threads);
}

}  // namespace weft::kernels
