// Native CPU kernels for the delay-history reads of a Network (see brainmass_eqx/_history.py).
//
// XLA's CPU gather and scatter cost about 1 ns per element (2 ns for the rows of a batched
// buffer), which made the delayed read most of a network step. These loops do the same
// arithmetic at memory speed. Layouts are those of _history.py: a buffer of M flat slots,
// each slot a contiguous row of B ensemble members (B = 1 for a single run); complex
// buffers are "packed" (two samples per slot) and read with complex weights, of which only
// the real part of the product is kept.
#include <complex>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>
#include <algorithm>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "share_work.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using bmx::ShareWork;

#if defined(__AVX512F__)
constexpr bool kAvx512 = true;
#else
constexpr bool kAvx512 = false;
#endif

// sum_j Re(w[j] * rows[idx[j]]) for one target of a single run. With AVX-512, float32 rows
// are gathered 16 (complex64: 8) at a time (measured on 6,400 pairs: 3-4 us against 11 us
// scalar); otherwise four partial sums break the dependency chain of the additions.
template <typename R, bool kComplex>
R RowSum(const R* rows, const int32_t* it, const R* wt, int64_t J) {
  constexpr int64_t E = kComplex ? 2 : 1;  // scalars per element
  int64_t j = 0;
  R s = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<R, float>) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    if constexpr (kComplex) {
      // A complex64 is read as one 64-bit lane; Re(w g) = wr gr - wi gi: negate odd lanes.
      const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi64(int64_t{1} << 63));
      for (; j + 16 <= J; j += 16) {
        __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(it + j));
        __m256i i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(it + j + 8));
        __m512 g0 = _mm512_castpd_ps(_mm512_i32gather_pd(i0, reinterpret_cast<const double*>(rows), 8));
        __m512 g1 = _mm512_castpd_ps(_mm512_i32gather_pd(i1, reinterpret_cast<const double*>(rows), 8));
        acc0 = _mm512_fmadd_ps(g0, _mm512_xor_ps(_mm512_loadu_ps(wt + 2 * j), sign), acc0);
        acc1 = _mm512_fmadd_ps(g1, _mm512_xor_ps(_mm512_loadu_ps(wt + 2 * j + 16), sign), acc1);
      }
    } else {
      for (; j + 32 <= J; j += 32) {
        __m512i i0 = _mm512_loadu_si512(it + j);
        __m512i i1 = _mm512_loadu_si512(it + j + 16);
        acc0 = _mm512_fmadd_ps(_mm512_i32gather_ps(i0, rows, 4), _mm512_loadu_ps(wt + j), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_i32gather_ps(i1, rows, 4), _mm512_loadu_ps(wt + j + 16), acc1);
      }
    }
    s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  }
#endif
  R acc[4] = {0, 0, 0, 0};
  for (; j + 1 < J; j += 2) {
    const R* g0 = rows + static_cast<int64_t>(it[j]) * E;
    const R* g1 = rows + static_cast<int64_t>(it[j + 1]) * E;
    acc[0] += wt[j * E] * g0[0];
    acc[2] += wt[(j + 1) * E] * g1[0];
    if constexpr (kComplex) {
      acc[1] -= wt[j * E + 1] * g0[1];
      acc[3] -= wt[(j + 1) * E + 1] * g1[1];
    }
  }
  if (j < J) {
    const R* g = rows + static_cast<int64_t>(it[j]) * E;
    acc[0] += wt[j * E] * g[0];
    if constexpr (kComplex) acc[1] -= wt[j * E + 1] * g[1];
  }
  return s + ((acc[0] + acc[2]) + (acc[1] + acc[3]));
}

// out[t, b] = Re sum_j w[t, j] * rows[idx[t, j], b]   (real: Re is the identity)
template <typename R, bool kComplex>
void ReadSum(const R* rows, const int32_t* idx, const R* w, R* out, int64_t T, int64_t J, int64_t B) {
  constexpr int64_t E = kComplex ? 2 : 1;
  if (B == 1) {
    for (int64_t t = 0; t < T; ++t) out[t] = RowSum<R, kComplex>(rows, idx + t * J, w + t * J * E, J);
    return;
  }
  // An ensemble (batch-last rows): each pair reads B contiguous members, a vector loop.
  for (int64_t t = 0; t < T; ++t) {
    R* o = out + t * B;
    std::memset(o, 0, sizeof(R) * B);
    const int32_t* it = idx + t * J;
    const R* wt = w + t * J * E;
    for (int64_t j = 0; j < J; ++j) {
      const R* g = rows + static_cast<int64_t>(it[j]) * B * E;
      const R wr = wt[j * E];
      if constexpr (kComplex) {
        const R wi = wt[j * E + 1];
        for (int64_t b = 0; b < B; ++b) o[b] += wr * g[2 * b] - wi * g[2 * b + 1];
      } else {
        for (int64_t b = 0; b < B; ++b) o[b] += wr * g[b];
      }
    }
  }
}

// out[idx[i]] += scale * values[i] for every i < n (single run; complex: both parts
// scaled). Indices may repeat.
template <typename R, bool kComplex>
void ScaledScatter(R* out, const R* values, const int32_t* idx, int64_t n, R scale) {
  constexpr int64_t E = kComplex ? 2 : 1;
  int64_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512CD__) && defined(__AVX512VL__)
  // A vector of distinct indices is gathered, added to and scattered back at once; one
  // with a repeated index (a conflict) is left to the scalar loop.
  if constexpr (std::is_same_v<R, float>) {
    const __m512 s = _mm512_set1_ps(scale);
    if constexpr (kComplex) {
      double* od = reinterpret_cast<double*>(out);
      for (; i + 8 <= n; i += 8) {
        __m256i vi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + i));
        if (!_mm256_testz_si256(_mm256_conflict_epi32(vi), _mm256_set1_epi32(-1))) {
          for (int64_t k = i; k < i + 8; ++k) {
            R* o = out + static_cast<int64_t>(idx[k]) * 2;
            o[0] += scale * values[k * 2];
            o[1] += scale * values[k * 2 + 1];
          }
          continue;
        }
        __m512 g = _mm512_castpd_ps(_mm512_i32gather_pd(vi, od, 8));
        g = _mm512_fmadd_ps(s, _mm512_loadu_ps(values + 2 * i), g);
        _mm512_i32scatter_pd(od, vi, _mm512_castps_pd(g), 8);
      }
    } else {
      for (; i + 16 <= n; i += 16) {
        __m512i vi = _mm512_loadu_si512(idx + i);
        if (_mm512_test_epi32_mask(_mm512_conflict_epi32(vi), _mm512_set1_epi32(-1))) {
          for (int64_t k = i; k < i + 16; ++k) out[idx[k]] += scale * values[k];
          continue;
        }
        __m512 g = _mm512_fmadd_ps(s, _mm512_loadu_ps(values + i), _mm512_i32gather_ps(vi, out, 4));
        _mm512_i32scatter_ps(out, vi, g, 4);
      }
    }
  }
#endif
  for (; i < n; ++i) {
    R* o = out + static_cast<int64_t>(idx[i]) * E;
    o[0] += scale * values[i * E];
    if constexpr (kComplex) o[1] += scale * values[i * E + 1];
  }
}

// out = base; out[idx[i]] += values[i] for every i (single run). Indices may repeat.
template <typename R, bool kComplex>
void ScatterAdd(const R* base, const R* values, const int32_t* idx, R* out, int64_t M, int64_t n) {
  if (out != base) std::memcpy(out, base, sizeof(R) * M * (kComplex ? 2 : 1));
  ScaledScatter<R, kComplex>(out, values, idx, n, R(1));  // 1 * v == v exactly
}

// out = base; out[idx[t, j]] += ct[t] * w[t, j] for every pair (single run): the transpose
// of ReadSum, without the T x J products as an array of their own (XLA made them in a
// fusion of their own, a third of the scatter's time, and the scatter read them back).
template <typename R, bool kComplex>
void ScatterWeighted(const R* base, const R* ct, const R* w, const int32_t* idx, R* out, int64_t M, int64_t T,
                     int64_t J) {
  constexpr int64_t E = kComplex ? 2 : 1;
  if (out != base) std::memcpy(out, base, sizeof(R) * M * E);
  for (int64_t t = 0; t < T; ++t) ScaledScatter<R, kComplex>(out, w + t * J * E, idx + t * J, J, ct[t]);
}

// The same sums as ReadSum, for a single run, computed K steps at a time (K <= the
// shortest delay in steps + 1, so all K steps read samples that exist at the block's
// first step). The ring's slots are rows of channels (one write per step); here each
// source's samples are copied into a time-contiguous row `hist` (two copies of the ring,
// so that a window never wraps), and a pair's K consecutive reads become one vector load
// (two for a packed buffer: x_m and x_{m-1}), not K gathers. At the block's first step
// (count % K == 0) the samples written since the previous block are copied and the K
// steps' sums accumulated in `cache` (T rows of 64 bytes: lane k is step k of the
// block, then the stamp, see Fresh); every step returns its lane. `off[t, j]` =
// source * row_length - lag; the window of step `count` starts at column
// (count mod C) + C - lag.

// dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols, of 4- or 8-byte
// elements (moved as bits). With AVX, in register tiles (8 x 8 of 4 bytes, 4 x 4 of 8 bytes:
// a row's loads, three (two) rounds of shuffles, a column's stores), the edges one by one;
// tiles in dst's order (columns of tiles outer), whose lines may be cold. One by one, every
// element was a load and a store: the ensemble read's per-step (B, T) output from its
// (T, B) sums, 80 x 16 floats, 0.48 us -> 0.19 us; a ring slot written from 16 x 80
// complex64 values, 0.42 -> 0.32 us (256 x 80: 19.8 -> 12.2 us).
template <size_t kBytes>
void TransposeTiles(const void* src_, int64_t src_stride, void* dst_, int64_t dst_stride, int64_t rows, int64_t cols) {
  static_assert(kBytes == 4 || kBytes == 8, "4- or 8-byte elements");
  using Bits = std::conditional_t<kBytes == 4, uint32_t, uint64_t>;
  const Bits* src = static_cast<const Bits*>(src_);
  Bits* dst = static_cast<Bits*>(dst_);
  int64_t rows_tiled = 0, cols_tiled = 0;
#if defined(__AVX__)
  constexpr int64_t kTile = kBytes == 4 ? 8 : 4;
  rows_tiled = rows - rows % kTile;
  cols_tiled = cols - cols % kTile;
  for (int64_t c0 = 0; c0 < cols_tiled; c0 += kTile)
    for (int64_t r0 = 0; r0 < rows_tiled; r0 += kTile) {
      const Bits* s = src + r0 * src_stride + c0;
      Bits* d = dst + c0 * dst_stride + r0;
      if constexpr (kBytes == 4) {
        auto row = [&](int64_t k) { return _mm256_loadu_ps(reinterpret_cast<const float*>(s + k * src_stride)); };
        const __m256 x0 = row(0), x1 = row(1), x2 = row(2), x3 = row(3), x4 = row(4), x5 = row(5), x6 = row(6),
                     x7 = row(7);
        const __m256 a0 = _mm256_unpacklo_ps(x0, x1), a1 = _mm256_unpackhi_ps(x0, x1);
        const __m256 a2 = _mm256_unpacklo_ps(x2, x3), a3 = _mm256_unpackhi_ps(x2, x3);
        const __m256 a4 = _mm256_unpacklo_ps(x4, x5), a5 = _mm256_unpackhi_ps(x4, x5);
        const __m256 a6 = _mm256_unpacklo_ps(x6, x7), a7 = _mm256_unpackhi_ps(x6, x7);
        const __m256 b0 = _mm256_shuffle_ps(a0, a2, 0x44), b1 = _mm256_shuffle_ps(a0, a2, 0xEE);
        const __m256 b2 = _mm256_shuffle_ps(a1, a3, 0x44), b3 = _mm256_shuffle_ps(a1, a3, 0xEE);
        const __m256 b4 = _mm256_shuffle_ps(a4, a6, 0x44), b5 = _mm256_shuffle_ps(a4, a6, 0xEE);
        const __m256 b6 = _mm256_shuffle_ps(a5, a7, 0x44), b7 = _mm256_shuffle_ps(a5, a7, 0xEE);
        auto column = [&](int64_t k, __m256 v) { _mm256_storeu_ps(reinterpret_cast<float*>(d + k * dst_stride), v); };
        column(0, _mm256_permute2f128_ps(b0, b4, 0x20));
        column(1, _mm256_permute2f128_ps(b1, b5, 0x20));
        column(2, _mm256_permute2f128_ps(b2, b6, 0x20));
        column(3, _mm256_permute2f128_ps(b3, b7, 0x20));
        column(4, _mm256_permute2f128_ps(b0, b4, 0x31));
        column(5, _mm256_permute2f128_ps(b1, b5, 0x31));
        column(6, _mm256_permute2f128_ps(b2, b6, 0x31));
        column(7, _mm256_permute2f128_ps(b3, b7, 0x31));
      } else {
        auto row = [&](int64_t k) { return _mm256_loadu_pd(reinterpret_cast<const double*>(s + k * src_stride)); };
        const __m256d x0 = row(0), x1 = row(1), x2 = row(2), x3 = row(3);
        const __m256d a0 = _mm256_unpacklo_pd(x0, x1), a1 = _mm256_unpackhi_pd(x0, x1);
        const __m256d a2 = _mm256_unpacklo_pd(x2, x3), a3 = _mm256_unpackhi_pd(x2, x3);
        auto column = [&](int64_t k, __m256d v) { _mm256_storeu_pd(reinterpret_cast<double*>(d + k * dst_stride), v); };
        column(0, _mm256_permute2f128_pd(a0, a2, 0x20));
        column(1, _mm256_permute2f128_pd(a1, a3, 0x20));
        column(2, _mm256_permute2f128_pd(a0, a2, 0x31));
        column(3, _mm256_permute2f128_pd(a1, a3, 0x31));
      }
    }
#endif
  // The edges: the columns past the tiles (every row), then the rows past them.
  for (int64_t c = cols_tiled; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) dst[c * dst_stride + r] = src[r * src_stride + c];
  for (int64_t c = 0; c < cols_tiled; ++c)
    for (int64_t r = rows_tiled; r < rows; ++r) dst[c * dst_stride + r] = src[r * src_stride + c];
}

// Whether the blocked state must be rebuilt from the ring: at a run's first step, or when
// it was made for other reads (its stamp, stored after the sums, is a hash of the
// offsets, weights and block length; a new state holds zero, never a stamp). Then the
// whole ring is copied and the current block's sums recomputed, whatever the step.
template <typename R>
bool Fresh(const R* stored, int64_t stamp, int64_t count) {
  return count == 0 || *stored != static_cast<R>(stamp);
}

// cache[t] += sum_j Re(w[t, j] * window_j) for vectors of VB bytes (the first K lanes
// are kept). Sources outer, targets inner: entry j of every target of a dense connectome
// reads the same source row, which then stays in L1 across the targets (target-major,
// each pair's window came from L2: measured 1.7 ns per pair against about 1 here).
template <typename R, bool kPacked, int VB>
void BlockSums(const R* base, R* cache, const int32_t* off, const R* w, int64_t T, int64_t J) {
  constexpr int64_t E = kPacked ? 2 : 1;
  constexpr int64_t kRow = 64 / sizeof(R);  // cache row, in scalars
  typedef R Vec __attribute__((vector_size(VB)));
  auto load = [](const R* p) {
    Vec v;
    std::memcpy(&v, p, sizeof(Vec));
    return v;
  };
  // Re((wr + i wi)(x_m + i x_{m-1})) = wr x_m - wi x_{m-1}
  auto pair = [&](const R* wt, int32_t o, Vec& a, Vec& b) {
    a += load(base + o) * wt[0];
    if constexpr (kPacked) b -= load(base + o - 1) * wt[1];
  };
  constexpr int64_t G = 4;  // sources per pass over the targets
  int64_t j0 = 0;
  for (; j0 + G <= J; j0 += G) {
    for (int64_t t = 0; t < T; ++t) {
      const int32_t* o = off + t * J + j0;
      const R* wt = w + (t * J + j0) * E;
      Vec a = load(cache + t * kRow), b = {}, c = {}, d = {};
      pair(wt, o[0], a, b);
      pair(wt + E, o[1], c, d);
      pair(wt + 2 * E, o[2], a, b);
      pair(wt + 3 * E, o[3], c, d);
      a = (a + c) + (b + d);
      std::memcpy(cache + t * kRow, &a, sizeof(Vec));
    }
  }
  for (; j0 < J; ++j0) {
    for (int64_t t = 0; t < T; ++t) {
      Vec a = load(cache + t * kRow), b = {};
      pair(w + (t * J + j0) * E, off[t * J + j0], a, b);
      a += b;
      std::memcpy(cache + t * kRow, &a, sizeof(Vec));
    }
  }
}

// Copies the ring's samples of steps (count - K, count] (all C slots when `fresh`) into
// the time-major history of the members [c0, c0 + width) of a batch-last ring of B (a
// single run: B = width = 1): block (N, row_length, width) at hist + c0 * N * row_length,
// each sample at its slot and, so that no window wraps, C columns further.
template <typename R, bool kPacked>
void CopyNewSamples(const R* ring, int64_t count, bool fresh, R* hist, int64_t C, int64_t S, int64_t chan0,
                    int64_t N, int64_t K, int64_t row_length, int64_t B, int64_t c0, int64_t width) {
  constexpr int64_t E = kPacked ? 2 : 1;
  R* H = hist + c0 * N * row_length;
  constexpr int64_t L = 64 / sizeof(R);  // a full chunk: one line of members
  // Shuffled in the machine's vectors: a 64-byte shuffle without AVX-512 compiled to
  // scalar stores read back as vectors (a stalled store forward per sample: a W1 chunk's
  // block copied in 9.7 us against 2.7 us in 32-byte vectors).
  constexpr int kBytes = kAvx512 ? 64 : 32;
  constexpr int64_t V = kBytes / sizeof(R);
  typedef R Vec __attribute__((vector_size(kBytes)));
  typedef std::conditional_t<sizeof(R) == 4, int32_t, int64_t> Index;
  typedef Index Mask __attribute__((vector_size(kBytes)));
  for (int64_t m = fresh ? count - C + 1 : count - K + 1; m <= count; ++m) {
    const int64_t slot = ((m % C) + C) % C;
    for (int64_t n = 0; n < N; ++n) {
      const R* src = ring + ((slot * S + chan0 + n) * B + c0) * E;
      R* dst = H + (n * row_length + slot) * width;
      R* dst2 = dst + C * width;
      if (width == L) {
        // Whole vectors (a scalar copy cost a third of the kernel): the real parts of a
        // packed ring are its even lanes.
        for (int64_t part = 0; part < L; part += V) {
          Vec v, hi;
          std::memcpy(&v, src + part * E, sizeof(Vec));
          if constexpr (kPacked) {
            std::memcpy(&hi, src + part * E + V, sizeof(Vec));
            Mask even;
            for (int64_t i = 0; i < V; ++i) even[i] = static_cast<Index>(2 * i);
            v = __builtin_shuffle(v, hi, even);
          }
          std::memcpy(dst + part, &v, sizeof(Vec));
          std::memcpy(dst2 + part, &v, sizeof(Vec));
        }
      } else {
        for (int64_t b = 0; b < width; ++b) dst[b] = dst2[b] = src[b * E];
      }
    }
  }
}

// A packed ring's x_{m-1} is the imaginary part of slot m, which the time-major copy does
// not keep: the windows read it as the real part of slot m - 1. The two agree for every
// sample a step wrote (the step writes x_{m+1} + i x_m after x_m + i x_{m-1}), and for the
// initial history, except at one seam: slot 0 holds h(0) + i h(-dt) from `history=`, while
// the first step writes x_1 + i y0 with y0 the initial state, which a history need not
// equal. The step-by-step read interpolates a delayed time in (0, dt) between y0 and x_1,
// so here every pair that reads m = 1 in the block starting at count - count % K gets
// -Im(w) (y0 - h(0)) added to that step's sum. Only while the ring still holds m = 0
// (count < C; later reads of m = 1 would need a lag beyond the capacity), and nothing to
// do where y0 = h(0) (no `history=`). For the members [b0, b0 + nb) of a batch-last ring
// of B (a single run: B = nb = 1); `cache` is theirs, (T, 64 bytes, nb) as the kernels keep
// it; a pair's source and lag come back from its offset source * row_length - lag.
template <typename R, bool kPacked>
void MendInitialSeam(const R* ring, int64_t count, R* cache, const int32_t* off, const R* w, int64_t T, int64_t J,
                     int64_t C, int64_t S, int64_t chan0, int64_t N, int64_t K, int64_t row_length, int64_t B,
                     int64_t b0, int64_t nb) {
  if constexpr (kPacked) {
    if (count < 1 || count >= C) return;
    constexpr int64_t kRow = 64 / sizeof(R);
    std::vector<R> delta(N * nb);
    bool any = false;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t b = 0; b < nb; ++b) {
        const R y0 = ring[(((1 * S) + chan0 + n) * B + b0 + b) * 2 + 1];  // Im(slot 1)
        const R h0 = ring[(((0 * S) + chan0 + n) * B + b0 + b) * 2];      // Re(slot 0)
        delta[n * nb + b] = y0 - h0;
        any = any || y0 != h0;
      }
    if (!any) return;
    const int64_t first = count - count % K;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < J; ++j) {
        const R wi = w[(t * J + j) * 2 + 1];
        if (wi == 0) continue;
        const int64_t o = off[t * J + j];
        const int64_t src = (o + row_length - 1) / row_length;  // o + row_length - 1 >= 0: lag < row_length
        const int64_t k = 1 + (src * row_length - o) - first;  // the block's step that reads m = 1
        if (k < 0 || k >= K) continue;
        R* c = cache + (t * kRow + k) * nb;
        for (int64_t b = 0; b < nb; ++b) c[b] -= wi * delta[src * nb + b];
      }
  }
}

// One run's read: a single run (B = 1, b = 0), or member b of a batch-last ring of B whose
// members read with indices and weights of their own (see BlockedMembersSum). `hist` is
// the whole history (member b's rows at b * N * row_length), `cache` the run's (T, 64
// bytes) sums, `stored` its stamp; `out` its T sums.
template <typename R, bool kPacked>
void BlockedReadSum(const R* ring, int64_t count, R* hist, R* cache, R* stored, R* out, const int32_t* off,
                    const R* w, int64_t T, int64_t J, int64_t C, int64_t S, int64_t chan0, int64_t N, int64_t K,
                    int64_t row_length, int64_t stamp, int64_t B = 1, int64_t b = 0) {
  constexpr int64_t kRow = 64 / sizeof(R);
  const int64_t step = count % K;
  const bool fresh = Fresh(stored, stamp, count);
  if (step == 0 || fresh) {
    CopyNewSamples<R, kPacked>(ring, count, fresh, hist, C, S, chan0, N, K, row_length, B, b, 1);
    std::memset(cache, 0, sizeof(R) * T * kRow);
    *stored = static_cast<R>(stamp);
    const R* base = hist + b * N * row_length + (count - step) % C + C;
    // Half vectors when they hold the block: a 32-byte load crosses a cache line less
    // often than a 64-byte one, which always does unless aligned.
    if (K * sizeof(R) <= 32)
      BlockSums<R, kPacked, 32>(base, cache, off, w, T, J);
    else
      BlockSums<R, kPacked, 64>(base, cache, off, w, T, J);
    MendInitialSeam<R, kPacked>(ring, count, cache, off, w, T, J, C, S, chan0, N, K, row_length, B, b, 1);
  }
  for (int64_t t = 0; t < T; ++t) out[t] = cache[t * kRow + step];
}

// The steps per block a caller asked for, within what the kernels can do: at least 1, at
// most one 64-byte vector of samples. (Fewer steps than asked is always right: a block of K
// steps only needs every lag to be at least K - 1.)
template <typename R>
int64_t StepsPerBlock(int64_t asked) {
  return std::clamp<int64_t>(asked, 1, 64 / sizeof(R));
}

// BlockedReadSum for an ensemble whose members read with offsets, weights, steps per block
// and stamps of their own (a vmap over conduction speeds: every member lags differently):
// each member is a single run's read of the batch-last ring, with its history rows (N,
// row_length) at hist + b * N * row_length, its sums (T, 64 bytes) at cache + b * T * kRow
// and its stamp at cache + B * T * kRow + b. `off` and `w` are (B, T, J) or, shared, (T, J)
// (member strides 0); `out` (B, T). Members are independent: with enough work they are
// shared with XLA's intra-op pool.
template <typename R, bool kPacked>
void BlockedMembersSum(ffi::ThreadPool& pool, const R* ring, int64_t count, R* hist, R* cache, R* out,
                       const int32_t* off, int64_t off_stride, const R* w, int64_t w_stride, const int32_t* stamps,
                       const int32_t* steps, int64_t T, int64_t J, int64_t C, int64_t S, int64_t chan0, int64_t N,
                       int64_t row_length, int64_t B) {
  constexpr int64_t kRow = 64 / sizeof(R);
  // Helpers only at a step where blocks worth more than handing them over begin (a step
  // that only returns its lanes costs less than scheduling a task). Members' blocks often
  // begin at different steps (their blocks differ in length), so a step's work is a few
  // members': 32 speeds of W1 (80 x 80 pairs, blocks of 6-9 steps) as one vmap took
  // 0.40-0.45 s with helpers from 2^16 pair-steps (two members' blocks) or 2^15, 0.77-0.93 s
  // from 2^20 (a helper almost never).
  int64_t work = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t K = StepsPerBlock<R>(steps[b]);
    if (count % K == 0 || Fresh(cache + B * T * kRow + b, stamps[b], count)) work += K;
  }
  const int64_t helpers = T * J * work >= (int64_t{1} << 16) ? std::min<int64_t>(pool.num_threads(), B) - 1 : 0;
  ShareWork(pool, B, std::max<int64_t>(helpers, 0), [&](int64_t b) {
    BlockedReadSum<R, kPacked>(ring, count, hist, cache + b * T * kRow, cache + B * T * kRow + b, out + b * T,
                               off + b * off_stride, w + b * w_stride, T, J, C, S, chan0, N,
                               StepsPerBlock<R>(steps[b]), row_length, stamps[b], B, b);
  });
}

// acc[t, k] = sum_j Re(w[t, j] * window_j[k]) for a full chunk of kChunk members (the
// members' sums of target t and step k at acc + t * acc_t + k * acc_k), the K
// (<= KMAX) steps' sums of a target held in registers while a group of G sources is added
// (one load per sample: x_{m-1} of step k is x_m of step k - 1). With 32 vector registers
// (AVX-512) a vector is the whole chunk and separate real and imaginary sums keep 2 K
// independent chains. With 16 (AVX2 and older) those 2 K accumulators of a whole chunk
// did not fit and spilled to the stack on every addition (a W1 member-step's delayed read
// 5.6-7.0 us at 16 and 256 members against 1.9 us for a single run, on a Zen 3 EPYC): there
// the chunk is summed in halves, and both products go into one sum per step (K + 4
// registers).
//
// A narrower last chunk (kNarrow: `width` members, its samples `width` apart) is summed
// with the same vectors: a vector's lanes beyond `width` load the next samples' members
// (inside the history: a row carries _ROW_PAD samples past its last window), and their
// sums, never copied out, are discarded. Only the vectors that hold a member are summed.
template <typename R, bool kPacked, int KMAX, bool kNarrow = false, bool kExact = false>
void ChunkSums(const R* H, R* acc, int64_t acc_t, int64_t acc_k, const int32_t* off, const R* w, int64_t T,
               int64_t J, int64_t K_, int64_t col0, int64_t width = 64 / sizeof(R)) {
  // kExact: K == KMAX, known when compiling: no test of k < K per step of every pair.
  const int64_t K = kExact ? KMAX : K_;
  constexpr int64_t E = kPacked ? 2 : 1;
  constexpr int64_t kFull = 64 / sizeof(R);
  // Members per chunk: the stride between a pair's samples.
  const int64_t L = kNarrow ? width : kFull;
  constexpr int kBytes = kAvx512 ? 64 : 32;
  constexpr int64_t V = kBytes / sizeof(R);  // members per vector
  constexpr bool kSeparate = kAvx512;
  typedef R Vec __attribute__((vector_size(kBytes)));
  auto load = [](const R* p) {
    Vec v;
    std::memcpy(&v, p, sizeof(Vec));
    return v;
  };
  const int64_t lanes = kNarrow ? (width + V - 1) / V * V : kFull;
  // Full chunks of exactly KMAX steps on AVX2 and older: samples pinned in registers and
  // the next target's windows prefetched (see below). With a runtime K or a narrow chunk
  // both made the loop 10-40 % slower.
  constexpr bool kPinned = !kSeparate && kExact;
  // Sources per group, whose sums stay in registers while every target adds them. Pinned
  // blocks of 8 steps: 16, as many as keep two targets' windows (the one summed, the one
  // prefetched: 2 x 16 x 9 lines, 18 KB) in a 32 KB L1. A C++ harness of W3's 16-member
  // chunk-block (80 x 80 pairs, its lags, one thread of a Zen 4 EPYC), with the prefetches
  // shared below: 53-56 us at 16 against 55-61 us at 8, 58-60 at 20 and 80-84 at 40, whose
  // prefetched lines were gone before they were read. Blocks of 16 steps (17 lines a
  // window) keep 8: 117-121 us against 133-135 at 16.
  constexpr int64_t G = kPinned && KMAX <= 8 ? 16 : 8;
  // An empty asm that claims to change v: it must be in a register from here on. (Only
  // with AVX: without it a 32-byte vector is no one register.)
  auto Pin = [](Vec& v) {
#if defined(__AVX__) && !defined(__AVX512F__)
    asm("" : "+x"(v));
#else
    (void)v;
#endif
  };
  // One pass with no sources: the sums are zeros.
  for (int64_t j0 = 0; j0 < std::max<int64_t>(J, 1); j0 += G) {
    const int64_t j1 = std::min<int64_t>(J, j0 + G);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < lanes; h += V) {
        R* a = acc + t * acc_t + h;
        Vec re[KMAX], im[KMAX];
#pragma GCC unroll 16
        for (int k = 0; k < KMAX; ++k) {
          re[k] = k < K && j0 > 0 ? load(a + k * acc_k) : Vec{};
          im[k] = Vec{};
        }
        for (int64_t j = j0; j < j1; ++j) {
          const R* p = H + (off[t * J + j] + col0) * L + h;
          const R wr = w[(t * J + j) * E];
          if constexpr (kPinned) {
            // The next target's window of this source, while this one's sums are added:
            // the group's windows (about 100 KB for 80 regions and a 20 ms delay) come
            // from L2 or L3, and the lags are too irregular for the hardware prefetcher.
            // A W1 chunk's block of 8 steps: 67-68 us -> 56-57 us with the register loads
            // below (blocks of 16: 141 -> 124 us).
            //
            // The window's K + 1 lines are prefetched half with each vector of members: all
            // of them with the first made its pass issue more memory operations than it
            // could overlap (the harness: 60-63 -> 53-56 us a block of 8 steps with groups
            // of 16, 125-130 -> 117-121 us a block of 16).
            static_assert(kFull == 2 * V, "a pinned chunk is two vectors of members");
            if (t + 1 < T) {
              const R* q = H + (off[(t + 1) * J + j] + col0) * L;
              constexpr int kSplit = KMAX / 2;  // lines -1 .. kSplit - 1 with the first vector
              if (h == 0) {
#pragma GCC unroll 16
                for (int k = -1; k < kSplit; ++k) __builtin_prefetch(q + k * L);
              } else {
#pragma GCC unroll 16
                for (int k = kSplit; k < KMAX; ++k) __builtin_prefetch(q + k * L);
              }
            }
          }
          if constexpr (kPacked) {
            const R wi = w[(t * J + j) * E + 1];
            Vec prev = load(p - L);
            if constexpr (kPinned) Pin(prev);
#pragma GCC unroll 16
            for (int k = 0; k < KMAX; ++k) {
              if (k < K) {
                Vec cur = load(p + k * L);
                // Loaded once into a register: left to itself the compiler folds every
                // sample into both of its multiply-adds as a memory operand, 2 K loads
                // per pair where K + 1 do (the loads, not the FMAs, then bound the loop).
                if constexpr (kPinned) Pin(cur);
                if constexpr (kSeparate) {
                  re[k] += cur * wr;
                  im[k] += prev * wi;
                } else {
                  // Two fused multiply-adds: written as one expression, the sum compiled
                  // to a multiply, a fused multiply-subtract and an add (W3's 256 members
                  // through `ensemble`: 1.67-1.81 s against 1.51-1.59 s as two).
                  re[k] += cur * wr;
                  re[k] -= prev * wi;
                }
                prev = cur;
              }
            }
          } else {
#pragma GCC unroll 16
            for (int k = 0; k < KMAX; ++k)
              if (k < K) re[k] += load(p + k * L) * wr;
          }
        }
#pragma GCC unroll 16
        for (int k = 0; k < KMAX; ++k)
          if (k < K) {
            const Vec v = kSeparate ? re[k] - im[k] : re[k];
            std::memcpy(a + k * acc_k, &v, sizeof(Vec));
          }
      }
  }
}

// BlockedReadSum for an ensemble of B members sharing indices and weights. The ring is
// batch-last (slot s, channel c: the B members' values at (s * S + c) * B), `cache` is
// (T, kRow, B) and the stamp, `out` (B, T). `hist` is private to this kernel: members in
// chunks of one cache line (kChunk; the last chunk may be narrower), each chunk a
// (N, row_length, width) block, so that a pair's K steps for a chunk are K contiguous
// lines and a chunk's share of the history (about 1 MB for 80 regions and a 20 ms
// delay) stays in a core's L2 while every target reads it. Chunks are independent: with
// enough work they are shared with XLA's intra-op pool (`ShareWork`).
template <typename R, bool kPacked>
void BlockedRowsChunk(const R* ring, int64_t count, bool fresh, R* hist, R* cache, const int32_t* off, const R* w,
                      int64_t T, int64_t J, int64_t C, int64_t S, int64_t chan0, int64_t N, int64_t K,
                      int64_t row_length, int64_t B, int64_t c0) {
  constexpr int64_t E = kPacked ? 2 : 1;
  constexpr int64_t kRow = 64 / sizeof(R);
  constexpr int64_t kChunk = 64 / sizeof(R);
  const int64_t width = std::min<int64_t>(kChunk, B - c0);
  const int64_t step = count % K;
  CopyNewSamples<R, kPacked>(ring, count, fresh, hist, C, S, chan0, N, K, row_length, B, c0, width);
  const R* H = hist + c0 * N * row_length;
  const int64_t col0 = (count - step) % C + C;
  if (width == kChunk) {
    // Straight into the cache, whose rows hold the B members of a (target, step).
    R* acc = cache + c0;
    const int64_t acc_t = kRow * B, acc_k = B;
    if (K == 8)
      ChunkSums<R, kPacked, 8, false, true>(H, acc, acc_t, acc_k, off, w, T, J, K, col0);
    else if (K == 16)
      ChunkSums<R, kPacked, 16, false, true>(H, acc, acc_t, acc_k, off, w, T, J, K, col0);
    else if (K < 8)
      ChunkSums<R, kPacked, 8>(H, acc, acc_t, acc_k, off, w, T, J, K, col0);
    else
      ChunkSums<R, kPacked, 16>(H, acc, acc_t, acc_k, off, w, T, J, K, col0);
    return;
  }
  // A narrower last chunk: its vectors' lanes past `width` are summed too, so its sums,
  // (T, K, kChunk), go to scratch memory on a cache line boundary (a split load costs
  // two), and `width` of them to the cache.
  static thread_local std::vector<R> scratch;
  scratch.resize(T * K * kChunk + kChunk);
  R* acc = scratch.data() + (kChunk - reinterpret_cast<uintptr_t>(scratch.data()) % 64 / sizeof(R)) % kChunk;
  if (K <= 8)
    ChunkSums<R, kPacked, 8, true>(H, acc, K * kChunk, kChunk, off, w, T, J, K, col0, width);
  else
    ChunkSums<R, kPacked, 16, true>(H, acc, K * kChunk, kChunk, off, w, T, J, K, col0, width);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k)
      std::memcpy(cache + (t * kRow + k) * B + c0, acc + (t * K + k) * kChunk, sizeof(R) * width);
}

template <typename R, bool kPacked>
void BlockedRowsSum(ffi::ThreadPool& pool, const R* ring, int64_t count, R* hist, R* cache, R* out,
                    const int32_t* off, const R* w, int64_t T, int64_t J, int64_t C, int64_t S, int64_t chan0,
                    int64_t N, int64_t K, int64_t row_length, int64_t stamp, int64_t B) {
  constexpr int64_t kRow = 64 / sizeof(R);
  constexpr int64_t kChunk = 64 / sizeof(R);
  const int64_t step = count % K;
  R* stamps = cache + T * kRow * B;
  const bool fresh = Fresh(stamps, stamp, count);
  if (step == 0 || fresh) {
    const int64_t chunks = (B + kChunk - 1) / kChunk;
    // Helpers only where a block is worth far more than handing it over (a few us; a
    // 16-member chunk of 80 x 80 pairs and 8 steps is about 90 us).
    const int64_t helpers = T * J * K * B >= (int64_t{1} << 20) ? std::min(pool.num_threads(), chunks) - 1 : 0;
    ShareWork(pool, chunks, std::max<int64_t>(helpers, 0), [&](int64_t c) {
      BlockedRowsChunk<R, kPacked>(ring, count, fresh, hist, cache, off, w, T, J, C, S, chan0, N, K, row_length, B,
                                   c * kChunk);
    });
    MendInitialSeam<R, kPacked>(ring, count, cache, off, w, T, J, C, S, chan0, N, K, row_length, B, 0, B);
    for (int64_t b = 0; b < B; ++b) stamps[b] = static_cast<R>(stamp);
  }
  // out (B, T), the members' layout: the step's (T, B) slice of the cache (row t at
  // (t * kRow + step) * B), transposed.
  TransposeTiles<sizeof(R)>(cache + step * B, kRow * B, out, T, T, B);
}

ffi::Error Unsupported(ffi::DataType dtype) {
  return ffi::Error::InvalidArgument("brainmass_eqx delay kernel: unsupported dtype " +
                                     std::to_string(static_cast<int>(dtype)));
}

// Runs fn<R, complex>() for the buffer's dtype.
template <typename Fn>
ffi::Error Dispatch(ffi::DataType dtype, Fn&& fn) {
  switch (dtype) {
    case ffi::DataType::F32: fn(float{}, std::false_type{}); return ffi::Error::Success();
    case ffi::DataType::F64: fn(double{}, std::false_type{}); return ffi::Error::Success();
    case ffi::DataType::C64: fn(float{}, std::true_type{}); return ffi::Error::Success();
    case ffi::DataType::C128: fn(double{}, std::true_type{}); return ffi::Error::Success();
    default: return Unsupported(dtype);
  }
}

ffi::Error ReadSumImpl(ffi::AnyBuffer rows, ffi::Buffer<ffi::S32> idx, ffi::AnyBuffer w,
                       ffi::Result<ffi::AnyBuffer> out) {
  const int64_t T = idx.dimensions()[0];
  const int64_t J = T == 0 ? 0 : static_cast<int64_t>(idx.element_count()) / T;
  const int64_t B = T == 0 ? 1 : static_cast<int64_t>(out->element_count()) / T;
  return Dispatch(rows.element_type(), [&](auto r, auto c) {
    using R = decltype(r);
    ReadSum<R, decltype(c)::value>(static_cast<const R*>(rows.untyped_data()), idx.typed_data(),
                                   static_cast<const R*>(w.untyped_data()),
                                   static_cast<R*>(out->untyped_data()), T, J, B);
  });
}

ffi::Error ScatterAddImpl(ffi::AnyBuffer base, ffi::AnyBuffer values, ffi::Buffer<ffi::S32> idx,
                          ffi::Result<ffi::AnyBuffer> out) {
  return Dispatch(base.element_type(), [&](auto r, auto c) {
    using R = decltype(r);
    ScatterAdd<R, decltype(c)::value>(static_cast<const R*>(base.untyped_data()),
                                      static_cast<const R*>(values.untyped_data()), idx.typed_data(),
                                      static_cast<R*>(out->untyped_data()),
                                      static_cast<int64_t>(base.element_count()),
                                      static_cast<int64_t>(idx.element_count()));
  });
}

ffi::Error ScatterWeightedImpl(ffi::AnyBuffer base, ffi::AnyBuffer ct, ffi::AnyBuffer w,
                               ffi::Buffer<ffi::S32> idx, ffi::Result<ffi::AnyBuffer> out) {
  const int64_t T = idx.dimensions()[0];
  const int64_t J = T == 0 ? 0 : static_cast<int64_t>(idx.element_count()) / T;
  return Dispatch(base.element_type(), [&](auto r, auto c) {
    using R = decltype(r);
    ScatterWeighted<R, decltype(c)::value>(static_cast<const R*>(base.untyped_data()),
                                           static_cast<const R*>(ct.untyped_data()),
                                           static_cast<const R*>(w.untyped_data()), idx.typed_data(),
                                           static_cast<R*>(out->untyped_data()),
                                           static_cast<int64_t>(base.element_count()), T, J);
  });
}

ffi::Error BlockedReadSumImpl(ffi::AnyBuffer ring, ffi::Buffer<ffi::S32> count, ffi::AnyBuffer hist,
                              ffi::AnyBuffer cache, ffi::Buffer<ffi::S32> off, ffi::AnyBuffer w,
                              ffi::Buffer<ffi::S32> stamp_buf, ffi::Buffer<ffi::S32> steps,
                              ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> hist_out,
                              ffi::Result<ffi::AnyBuffer> cache_out, int64_t C, int64_t S, int64_t chan0, int64_t N,
                              int64_t row_length, ffi::ThreadPool pool) {
  // Operands, not attributes: other weights and delays of the same shape reuse the program.
  const int64_t stamp = stamp_buf.typed_data()[0];
  const int64_t T = off.dimensions()[0];
  const int64_t J = T == 0 ? 0 : static_cast<int64_t>(off.element_count()) / T;
  const int64_t B = T == 0 ? 1 : static_cast<int64_t>(out->element_count()) / T;  // ensemble members
  const int64_t n = count.typed_data()[0];
  if (n < 0) return ffi::Error::InvalidArgument("brainmass_eqx blocked read: negative step count");
  return Dispatch(ring.element_type(), [&](auto r, auto c) {
    using R = decltype(r);
    constexpr int64_t kRow = 64 / sizeof(R);
    const int64_t K = StepsPerBlock<R>(steps.typed_data()[0]);
    // Aliased operands: XLA hands the same memory back unless it had to copy.
    R* h = static_cast<R*>(hist_out->untyped_data());
    R* k = static_cast<R*>(cache_out->untyped_data());
    if (h != hist.untyped_data()) std::memcpy(h, hist.untyped_data(), hist.size_bytes());
    if (k != cache.untyped_data()) std::memcpy(k, cache.untyped_data(), cache.size_bytes());
    const R* g = static_cast<const R*>(ring.untyped_data());
    R* o = static_cast<R*>(out->untyped_data());
    const R* wt = static_cast<const R*>(w.untyped_data());
    if (B == 1)
      BlockedReadSum<R, decltype(c)::value>(g, n, h, k, k + T * kRow, o, off.typed_data(), wt, T, J, C, S, chan0, N,
                                            K, row_length, stamp);
    else
      BlockedRowsSum<R, decltype(c)::value>(pool, g, n, h, k, o, off.typed_data(), wt, T, J, C, S, chan0, N, K,
                                            row_length, stamp, B);
  });
}

// out (B, T): BlockedMembersSum. `off` and `w` are (B, T, J) when their members differ,
// else (T, J); `stamps` and `steps` (B,).
ffi::Error BlockedMembersSumImpl(ffi::AnyBuffer ring, ffi::Buffer<ffi::S32> count, ffi::AnyBuffer hist,
                                 ffi::AnyBuffer cache, ffi::Buffer<ffi::S32> off, ffi::AnyBuffer w,
                                 ffi::Buffer<ffi::S32> stamps, ffi::Buffer<ffi::S32> steps,
                                 ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> hist_out,
                                 ffi::Result<ffi::AnyBuffer> cache_out, int64_t C, int64_t S, int64_t chan0,
                                 int64_t N, int64_t row_length, ffi::ThreadPool pool) {
  const auto dims = out->dimensions();
  if (dims.size() != 2) return ffi::Error::InvalidArgument("brainmass_eqx blocked read: sums must be (B, T)");
  const int64_t B = dims[0], T = dims[1];
  const auto od = off.dimensions();
  const int64_t J = od.size() == 0 ? 0 : od[od.size() - 1];
  const bool own_offsets = od.size() == 3, own_weights = w.dimensions().size() == 3;
  if (static_cast<int64_t>(stamps.element_count()) != B || static_cast<int64_t>(steps.element_count()) != B)
    return ffi::Error::InvalidArgument("brainmass_eqx blocked read: one stamp and one block length per member");
  const int64_t n = count.typed_data()[0];
  if (n < 0) return ffi::Error::InvalidArgument("brainmass_eqx blocked read: negative step count");
  return Dispatch(ring.element_type(), [&](auto r, auto c) {
    using R = decltype(r);
    constexpr int64_t E = decltype(c)::value ? 2 : 1;
    R* h = static_cast<R*>(hist_out->untyped_data());
    R* k = static_cast<R*>(cache_out->untyped_data());
    if (h != hist.untyped_data()) std::memcpy(h, hist.untyped_data(), hist.size_bytes());
    if (k != cache.untyped_data()) std::memcpy(k, cache.untyped_data(), cache.size_bytes());
    BlockedMembersSum<R, decltype(c)::value>(
        pool, static_cast<const R*>(ring.untyped_data()), n, h, k, static_cast<R*>(out->untyped_data()),
        off.typed_data(), own_offsets ? T * J : 0, static_cast<const R*>(w.untyped_data()),
        own_weights ? T * J * E : 0, stamps.typed_data(), steps.typed_data(), T, J, C, S, chan0, N, row_length, B);
  });
}

// dst[c * rows + r] = src[r * cols + c] for E-byte elements. Written in dst's order: the
// source is a hot step's values, the destination a ring slot last touched a delay ago, whose
// lines then stream in order (element by element, measured on 256 x 80 complex64: 12 us
// against 17 in tiles). 4- and 8-byte elements go in AVX register tiles taken in dst's order
// by columns of tiles (`TransposeTiles`; a later microbenchmark of 256 x 80 complex64: 12.2
// us against 19.8 element by element).
template <size_t E>
void Transpose(const char* src, char* dst, int64_t rows, int64_t cols) {
  if constexpr (E == 4 || E == 8) {
    TransposeTiles<E>(src, cols, dst, rows, rows, cols);
  } else {
    struct Element {
      char bytes[E];
    };
    const Element* s = reinterpret_cast<const Element*>(src);
    Element* d = reinterpret_cast<Element*>(dst);
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = 0; r < rows; ++r) d[c * rows + r] = s[r * cols + c];
  }
}

// out = buf with the flat run [start, start + B * W) set to the transpose of values (B, W):
// a batched ring's write of one slot (every member's channels: one contiguous run of its
// batch-last memory, from the members' (B, W) values). XLA updates a loop-carried array in
// place only through an update of its own shape; this writes the run in place whatever
// the array's logical shape.
ffi::Error WriteRunImpl(ffi::AnyBuffer buf, ffi::AnyBuffer values, ffi::Buffer<ffi::S32> start,
                        ffi::Result<ffi::AnyBuffer> out) {
  char* o = static_cast<char*>(out->untyped_data());
  if (o != buf.untyped_data()) std::memcpy(o, buf.untyped_data(), buf.size_bytes());
  const int64_t first = start.typed_data()[0];
  const size_t width = ffi::ByteWidth(buf.element_type());
  const auto dims = values.dimensions();
  if (dims.size() != 2) return ffi::Error::InvalidArgument("brainmass_eqx ring write: values must be (B, W)");
  if (first < 0 || (first + static_cast<int64_t>(values.element_count())) * static_cast<int64_t>(width) >
                       static_cast<int64_t>(buf.size_bytes()))
    return ffi::Error::InvalidArgument("brainmass_eqx ring write: the run is outside the buffer");
  const char* v = static_cast<const char*>(values.untyped_data());
  char* run = o + first * width;
  switch (width) {
    case 4:
      Transpose<4>(v, run, dims[0], dims[1]);
      break;
    case 8:
      Transpose<8>(v, run, dims[0], dims[1]);
      break;
    case 16:
      Transpose<16>(v, run, dims[0], dims[1]);
      break;
    default:
      return ffi::Error::InvalidArgument("brainmass_eqx ring write: unsupported element size");
  }
  return ffi::Error::Success();
}

// (buf[slot * width, (slot + 1) * width), buf with that run zeroed), in place: the transpose
// of a single run's ring write (XLA's slice and update of the same carried buffer made it
// copy the buffer, twice, at every reverse step).
ffi::Error RingTakeImpl(ffi::AnyBuffer buf, ffi::Buffer<ffi::S32> slot, ffi::Result<ffi::AnyBuffer> value,
                        ffi::Result<ffi::AnyBuffer> out, int64_t width) {
  char* o = static_cast<char*>(out->untyped_data());
  if (o != buf.untyped_data()) std::memcpy(o, buf.untyped_data(), buf.size_bytes());
  const int64_t bytes = width * static_cast<int64_t>(ffi::ByteWidth(buf.element_type()));
  const int64_t first = slot.typed_data()[0] * bytes;
  if (first < 0 || first + bytes > static_cast<int64_t>(buf.size_bytes()))
    return ffi::Error::InvalidArgument("brainmass_eqx ring take: the slot is outside the buffer");
  std::memcpy(value->untyped_data(), o + first, bytes);
  std::memset(o + first, 0, bytes);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(BmxReadSum, ReadSumImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(BmxScatterAdd, ScatterAddImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::AnyBuffer>());


XLA_FFI_DEFINE_HANDLER_SYMBOL(BmxScatterWeighted, ScatterWeightedImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::AnyBuffer>());


#define BMX_BLOCKED_BINDING                  \
  ffi::Ffi::Bind()                           \
      .Arg<ffi::AnyBuffer>()                 \
      .Arg<ffi::Buffer<ffi::S32>>()          \
      .Arg<ffi::AnyBuffer>()                 \
      .Arg<ffi::AnyBuffer>()                 \
      .Arg<ffi::Buffer<ffi::S32>>()          \
      .Arg<ffi::AnyBuffer>()                 \
      .Arg<ffi::Buffer<ffi::S32>>()          \
      .Arg<ffi::Buffer<ffi::S32>>()          \
      .Ret<ffi::AnyBuffer>()                 \
      .Ret<ffi::AnyBuffer>()                 \
      .Ret<ffi::AnyBuffer>()                 \
      .Attr<int64_t>("n_slots")              \
      .Attr<int64_t>("n_channels")           \
      .Attr<int64_t>("first_channel")        \
      .Attr<int64_t>("n_sources")            \
      .Attr<int64_t>("row_length")           \
      .Ctx<ffi::ThreadPool>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(BmxBlockedReadSum, BlockedReadSumImpl, BMX_BLOCKED_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(BmxBlockedMembersSum, BlockedMembersSumImpl, BMX_BLOCKED_BINDING);

XLA_FFI_DEFINE_HANDLER_SYMBOL(BmxWriteRun, WriteRunImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(BmxRingTake, RingTakeImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int64_t>("width"));
