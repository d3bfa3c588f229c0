/* Branch-free double-precision elementary functions for the fused kernels.

   The C library's log, exp and lgamma are calls the compiler cannot vectorise; these
   are written as straight-line code (integer bit manipulation, polynomials, selects)
   so that a loop calling them is vectorised by GCC at -O3. Each takes and returns a
   double and is accurate to 2 ulp (log, exp) or 3e-14 (absolute below 1, relative
   above: the log-gamma and digamma pieces); tests/test_kernels.py checks them against
   NumPy and SciPy over grids that include the edges.

   log and exp follow fdlibm (Sun Microsystems, 1993): the argument is split into a
   power of two and a reduced part, and the reduced part goes through the same
   minimax polynomials. The log-gamma and digamma functions shift x < 8 up to x + 8
   with the recurrences Gamma(x + 1) = x Gamma(x) and psi(x + 1) = psi(x) + 1/x (one
   product and its derivative, so one log and one division), then use Stirling's
   asymptotic series. */
#ifndef SBDGM_MATH_H
#define SBDGM_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline double sbdgm_asdouble(uint64_t i) { double d; memcpy(&d, &i, sizeof d); return d; }
static inline uint64_t sbdgm_asuint(double d) { uint64_t i; memcpy(&i, &d, sizeof i); return i; }

/* log(x): exact special cases (0 -> -inf, inf -> inf, negative or NaN -> NaN).
   Within 2 ulp (fdlibm's bound is 1 ulp; contracted multiply-adds cost the second). */
static inline double sbdgm_log(double x)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    int sub = x < 2.2250738585072014e-308;       /* subnormal (or <= 0): scale by 2^54 */
    double xs = sub ? x * 18014398509481984.0 : x;
    uint64_t ix = sbdgm_asuint(xs);
    /* split xs = 2^k z with z in [sqrt(2)/2, sqrt(2)) */
    uint64_t tmp = ix - 0x3fe6a09e667f3bcdULL;
    /* k = tmp >> 52 as a signed 12-bit field, converted to double without an integer
       conversion instruction (which AVX2 lacks for 64-bit lanes) */
    double k = sbdgm_asdouble(0x4330000000000000ULL | (tmp >> 52)) - 4503599627370496.0;
    k = k >= 2048.0 ? k - 4096.0 : k;
    k = sub ? k - 54.0 : k;
    double z = sbdgm_asdouble(ix - (tmp & 0xfff0000000000000ULL));
    double f = z - 1.0;
    double s = f / (2.0 + f);
    double zz = s * s, w = zz * zz;
    double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    double t2 = zz * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    double R = t2 + t1, hfsq = 0.5 * f * f;
    double r = k * ln2_hi - ((hfsq - (s * (hfsq + R) + k * ln2_lo)) - f);
    r = x == INFINITY ? x : r;
    r = x == 0.0 ? -INFINITY : r;
    return (x < 0.0 || x != x) ? NAN : r;
}

/* exp(x): inf above 709.78, 0 below -708.39 (no subnormal results). Cody and Waite's
   reduction x = k ln 2 + r, |r| <= ln(2)/2, and a degree-13 Taylor polynomial for e^r
   (truncation error below 5e-18; no division, unlike fdlibm's rational form). */
static inline double sbdgm_exp(double x)
{
    const double invln2 = 1.44269504088896338700e+00;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double shift = 6755399441055744.0;     /* 1.5 * 2^52: rounds to an integer */
    int big = x > 709.0;                         /* exp(x - 1) e: keeps 2^k representable */
    double xc = big ? (x > 710.0 ? 709.0 : x - 1.0)
                    : (x < -708.3964185322641 ? -708.3964185322641 : x);
    double kd = xc * invln2 + shift;
    uint64_t ki = sbdgm_asuint(kd);
    kd -= shift;
    double r = (xc - kd * ln2_hi) - kd * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    double scale = sbdgm_asdouble((ki + 1023ULL) << 52);
    double out = p * scale;
    out = big ? out * 2.718281828459045 : out;
    out = x > 709.782712893384 ? INFINITY : out;
    out = x < -708.3964185322641 ? 0.0 : out;
    return x != x ? x : out;
}

/* For x > 0, the shift used by the log-gamma and digamma pieces: y = x + 8 when x < 8
   (else y = x), P = x (x + 1) ... (x + 7) and its derivative dP (1 and 0 when x >= 8),
   so that log Gamma(x) = stirling(y) - log P and psi(x) = psi_asym(y) - dP / P. One
   division gives both 1/y and 1/P (y P stays in range for every finite x > 0). */
typedef struct { double y, inv_y, p, inv_p, dp; } sbdgm_shift_t;

static inline sbdgm_shift_t sbdgm_shift(double x)
{
    double p = 1.0, dp = 0.0;
    #pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {                /* unrolled: vectorises across elements */
        double xi = x + (double)i;
        dp = dp * xi + p;
        p = p * xi;
    }
    int small = x < 8.0;
    sbdgm_shift_t s;
    s.y = small ? x + 8.0 : x;
    s.p = small ? p : 1.0;                       /* x >= 8: P may overflow, is not used */
    s.dp = small ? dp : 0.0;
    double q = 1.0 / (s.y * s.p);
    s.inv_y = q * s.p;
    s.inv_p = q * s.y;
    return s;
}

/* Stirling's series for log Gamma(y), y >= 8: error below 2e-14. */
static inline double sbdgm_lgamma_asym(double y, double log_y, double r)
{
    const double half_log_2pi = 0.91893853320467274178;
    double r2 = r * r;
    double series = r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0
                    - r2 * (1.0 / 1680.0 - r2 * (1.0 / 1188.0
                    - r2 * (691.0 / 360360.0))))));
    return (y - 0.5) * log_y - y + half_log_2pi + series;
}

/* Asymptotic series for psi(y), y >= 8: error below 2e-14. */
static inline double sbdgm_psi_asym(double log_y, double r)
{
    double r2 = r * r;
    return log_y - 0.5 * r - r2 * (1.0 / 12.0 - r2 * (1.0 / 120.0 - r2 * (1.0 / 252.0
           - r2 * (1.0 / 240.0 - r2 * (1.0 / 132.0 - r2 * (691.0 / 32760.0))))));
}

/* log Gamma(x) and psi(x) for x > 0 (NaN for x <= 0 or NaN; inf -> inf, inf). */
static inline void sbdgm_lgamma_psi(double x, double *lg, double *psi)
{
    sbdgm_shift_t s = sbdgm_shift(x);
    double log_y = sbdgm_log(s.y);
    double l = sbdgm_lgamma_asym(s.y, log_y, s.inv_y) - sbdgm_log(s.p);
    double p = sbdgm_psi_asym(log_y, s.inv_y) - s.dp * s.inv_p;
    int bad = !(x > 0.0);
    *lg = bad ? NAN : (x == INFINITY ? INFINITY : l);
    *psi = bad ? NAN : (x == INFINITY ? INFINITY : p);
}

/* psi'(x) for x > 0: recurrence to x + 16 (sixteen reciprocals; the series at 8 would
   leave 3e-14) and the asymptotic series. Used once per element, for the exact digamma. */
static inline double sbdgm_trigamma(double x)
{
    double acc = 0.0;
    int small = x < 16.0;
    #pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
        double xi = x + (double)i;
        acc += small ? 1.0 / (xi * xi) : 0.0;
    }
    double y = small ? x + 16.0 : x;
    double r = 1.0 / y, r2 = r * r;
    double asym = r + 0.5 * r2 + r * r2 * (1.0 / 6.0 - r2 * (1.0 / 30.0 - r2 * (1.0 / 42.0
                  - r2 * (1.0 / 30.0 - r2 * (5.0 / 66.0 - r2 * (691.0 / 2730.0))))));
    double out = acc + asym;
    return !(x > 0.0) ? NAN : out;
}

/* For x, z > 0: log Gamma(x) - log Gamma(z), psi(x) and psi(z), with one log of
   P(x) / P(z) instead of two (the KL series needs only the difference). */
static inline void sbdgm_lgamma_diff_psi(double x, double z, double *lg_diff, double *psi_x,
                                         double *psi_z)
{
    sbdgm_shift_t sx = sbdgm_shift(x), sz = sbdgm_shift(z);
    double log_yx = sbdgm_log(sx.y), log_yz = sbdgm_log(sz.y);
    double d = sbdgm_lgamma_asym(sx.y, log_yx, sx.inv_y) - sbdgm_lgamma_asym(sz.y, log_yz, sz.inv_y)
               - sbdgm_log(sx.p * sz.inv_p);
    double px = sbdgm_psi_asym(log_yx, sx.inv_y) - sx.dp * sx.inv_p;
    double pz = sbdgm_psi_asym(log_yz, sz.inv_y) - sz.dp * sz.inv_p;
    int bad = !(x > 0.0) || !(z > 0.0);
    *lg_diff = bad ? NAN : d;
    *psi_x = bad ? NAN : px;
    *psi_z = bad ? NAN : pz;
}

#endif
