// exprel(z) = (e^z - 1) / z for a large array (an ensemble's state), see brainmass_eqx/models/_math.py.
//
// The same operations, in the same order and precision, as `_exprel_parts`' value (less the
// range reduction where it cannot change a bit, see ExprelRun): the results are XLA's bit
// for bit (tested where the library is built). Both contract a * b + c
// into one fused multiply-add: XLA:CPU does (its a * b + c equals the exactly rounded fma),
// and so do GCC and Clang for C++ by default. Why a kernel at all: on a CPU, XLA splits the
// fused exponential-Euler update of a batched state (16 members x 80 regions and more)
// across its intra-op threads at every step, and handing half of a few microseconds of
// work to another thread cost more than it saved (7.2-9.0 us per step against 3.7-4.2
// us on one thread); a custom call is never split. From kSplit elements on, the kernel
// shares chunks with XLA's pool itself (`ShareWork`: where the pool is busy, as when
// a population's slices run one per core, the caller computes every chunk).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "share_work.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

template <typename R>
struct Format;
template <>
struct Format<float> {
  using Int = int32_t;
  static constexpr int kBits = 23, kBias = 127, kDegree = 7;
  static constexpr float kLow = 87.0f, kHigh = 88.0f;
};
template <>
struct Format<double> {
  using Int = int64_t;
  static constexpr int kBits = 52, kBias = 1023, kDegree = 13;
  static constexpr double kLow = 707.0, kHigh = 709.0;
};

// The loop has no branches (ternaries become vector selects once the library is built with
// -fno-trapping-math), so the compiler vectorizes it. kSmall: every |z| < 1/3, so that the
// range reduction's m is 0 and the value is the series of z: the reduction and the division
// are left out.
template <typename R, bool kSmall = false>
void ExprelRun(const R* z, R* out, int64_t n) {
  using F = Format<R>;
  using Int = typename F::Int;
  // Python's float constants, rounded to R as JAX rounds them.
  const R inv_ln2 = static_cast<R>(1.4426950408889634), ln2_hi = static_cast<R>(0.693145751953125),
          ln2_lo = static_cast<R>(1.4286068203094172e-06);
  // Round half to even: adding and subtracting 1.5 * 2^bits (|z / ln 2| < 2^10 here) is
  // exact otherwise and, unlike nearbyint, vectorizes.
  const R shifter = static_cast<R>(1.5) * static_cast<R>(Int{1} << F::kBits);
  R coef[F::kDegree + 1];  // 1 / (k + 1)!, computed in double as math.factorial's quotient
  double factorial = 1.0;
  for (int k = 0; k <= F::kDegree; ++k) {
    factorial *= k + 1;
    coef[k] = static_cast<R>(1.0 / factorial);
  }
  auto series_of = [&](R r) {
    R series = coef[F::kDegree];
    for (int k = F::kDegree - 1; k >= 0; --k) series = series * r + coef[k];
    return series;
  };
  for (int64_t i = 0; i < n; ++i) {
    const R zi = z[i];
    if constexpr (kSmall) {
      // |z| < 1/3: the clip leaves z, m rounds to +0 and r = (z - 0) - 0 is z bit for bit,
      // so the range reduction is left out too (about half of this loop's operations).
      out[i] = series_of(zi);
    } else {
      // jnp.clip's maximum then minimum; a NaN fails both comparisons and passes, as in XLA.
      const R lower = zi < -F::kLow ? -F::kLow : zi;
      const R clipped = lower > F::kHigh ? F::kHigh : lower;
      const R m = (clipped * inv_ln2 + shifter) - shifter;
      const R r = (clipped - m * ln2_hi) - m * ln2_lo;
      const R series = series_of(r);
      const Int bits = (static_cast<Int>(m) + F::kBias) << F::kBits;
      R two_n;
      std::memcpy(&two_n, &bits, sizeof(R));
      const bool whole = m == 0;
      const R safe = whole ? R(1) : zi;
      const R reduced = (two_n * (r * series) + (two_n - R(1))) / safe;
      const R value = whole ? series : reduced;
      out[i] = zi > F::kHigh ? static_cast<R>(__builtin_inf()) : value;
    }
  }
}

// Runs of 128 elements whose every |z| < 1/3 (a stable exponential-Euler step's dt J) take
// the series alone: the same bits (m = 0 there, where the full formula selects the series),
// and no division computed only to be discarded. W3's 16-member slices spent about 10 % of
// their time in this kernel.
template <typename R>
void Exprel(const R* z, R* out, int64_t n) {
  constexpr int64_t kRun = 128;
  for (int64_t i = 0; i < n; i += kRun) {
    const int64_t len = std::min(kRun, n - i);
    int small = 1;  // a NaN compares false: the full formula
    for (int64_t l = 0; l < len; ++l) small &= std::abs(z[i + l]) < R(1) / R(3);
    if (small)
      ExprelRun<R, true>(z + i, out + i, len);
    else
      ExprelRun<R, false>(z + i, out + i, len);
  }
}

// Chunks of 1,024 elements (about 1 us each); shared from two chunks on. Measured on 2
// cores, 80 regions: one vmap call of 32 members took 0.645 s per 1 s fit-loss on one
// thread against 0.58 s with XLA's split.
constexpr int64_t kChunk = 1024, kSplit = 2 * kChunk;

template <typename R>
void SharedExprel(xla::ffi::ThreadPool& pool, const R* z, R* out, int64_t n) {
  if (n < kSplit) return Exprel(z, out, n);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), chunks) - 1;
  bmx::ShareWork(pool, chunks, std::max<int64_t>(helpers, 0), [&](int64_t c) {
    const int64_t first = c * kChunk;
    Exprel(z + first, out + first, std::min(kChunk, n - first));
  });
}

ffi::Error ExprelImpl(ffi::AnyBuffer z, ffi::Result<ffi::AnyBuffer> out, ffi::ThreadPool pool) {
  const int64_t n = static_cast<int64_t>(z.element_count());
  switch (z.element_type()) {
    case ffi::DataType::F32:
      SharedExprel<float>(pool, static_cast<const float*>(z.untyped_data()), static_cast<float*>(out->untyped_data()), n);
      return ffi::Error::Success();
    case ffi::DataType::F64:
      SharedExprel<double>(pool, static_cast<const double*>(z.untyped_data()), static_cast<double*>(out->untyped_data()),
                           n);
      return ffi::Error::Success();
    default:
      return ffi::Error::InvalidArgument("brainmass_eqx exprel kernel: only float32 and float64");
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(BmxExprel, ExprelImpl,
                              ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>().Ctx<ffi::ThreadPool>());
