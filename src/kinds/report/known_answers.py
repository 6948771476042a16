"""Known answers for the report's statistics (src/kinds/report/model.rs, statistics.rs), from
independent implementations: statsmodels' MixedLM (REML) and ANOVA, SciPy's distributions.

Run with a Python that has statsmodels and scipy (e.g. the CI's torch virtualenv plus
`pip install statsmodels scipy`); the printed constants are pasted into the Rust tests.
"""

import warnings

import numpy as np
import pandas as pd
import scipy
import statsmodels
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

warnings.simplefilter("ignore")
print(f"# statsmodels {statsmodels.__version__}, scipy {scipy.__version__}")

BNB = [
    [0.12, -0.04, 0.62, 0.34, 0.24, 0.20, 0.30],
    [0.30, 0.28, 0.16, -0.12, 0.20, -0.12, 0.06],
    [0.00, -0.12, 0.00, -0.14, 0.18, -0.16, 0.26],
]


def frame(table, levels):
    return pd.DataFrame([
        {"unit": f"s{u}", "n": levels[j], "d": value}
        for u, row in enumerate(table) for j, value in enumerate(row)
    ])


def mixed(table, levels):
    data = frame(table, levels)
    model = smf.mixedlm("d ~ 0 + C(n)", data, groups=data["unit"])
    return model.fit(reml=True, method="powell", maxiter=20000)


def mean_squares(table, levels):
    data = frame(table, levels)
    ols = smf.ols("d ~ C(n) + C(unit)", data).fit()
    anova = anova_lm(ols)
    return (anova.loc["C(unit)", "mean_sq"], anova.loc["C(unit)", "df"],
            anova.loc["Residual", "mean_sq"], anova.loc["Residual", "df"])


def satterthwaite(terms):
    variance = sum(a * ms for a, ms, _ in terms)
    return float(variance * variance / sum((a * ms) ** 2 / df for a, ms, df in terms))


levels = [1, 2, 3, 4, 5, 6, 7]
fit = mixed(BNB, levels)
print(f"const STATSMODELS_BNB_UNIT_VARIANCE: f64 = {float(fit.cov_re.iloc[0, 0])!r};")
print(f"const STATSMODELS_BNB_SCALE: f64 = {float(fit.scale)!r};")
print(f"const STATSMODELS_BNB_BSE_N3: f64 = {float(fit.bse['C(n)[3]'])!r};")
ms_u, df_u, ms_r, df_r = mean_squares(BNB, levels)
n = len(levels)
print(f"const SATTERTHWAITE_BNB_LEVEL_DF: f64 = {satterthwaite([(1 / n, ms_u, df_u), ((n - 1) / n, ms_r, df_r)])!r};")
names = [f"C(n)[{k}]" for k in (3, 4, 5)]
cov = fit.cov_params().loc[names, names].to_numpy()
contrast = np.full(3, 1 / 3)
print(f"const STATSMODELS_BNB_MIDDLE_SE: f64 = {float(np.sqrt(contrast @ cov @ contrast))!r};")
m = 3
print(f"const SATTERTHWAITE_BNB_MIDDLE_DF: f64 = {satterthwaite([(m / n, ms_u, df_u), (1 - m / n, ms_r, df_r)])!r};")
flat = [[1.0, 2.0, 0.4], [2.1, 0.5, 1.0], [0.6, 1.1, 1.9]]
fit = mixed(flat, [1, 2, 3])
print(f"const STATSMODELS_FLAT_SCALE: f64 = {float(fit.scale)!r}; // cov_re {float(fit.cov_re.iloc[0, 0]):.2e}")
print(f"const STATSMODELS_FLAT_BSE: f64 = {float(fit.bse['C(n)[1]'])!r};")

# statistics.rs
print(f"const NCT_CDF_2_5_AT_3: f64 = {float(stats.nct.cdf(2.5, 3, 1.5))!r};")
print(f"const NCT_CDF_M1_AT_12: f64 = {float(stats.nct.cdf(-1.0, 12, 0.7))!r};")
print(f"const NCT_CDF_4_AT_40: f64 = {float(stats.nct.cdf(4.0, 40.5, 3.2))!r};")
print(f"const NCT_CDF_0_AT_2: f64 = {float(stats.nct.cdf(0.0, 2, -2.0))!r};")


def detectable(se, df, alpha, power):
    crit = stats.t.ppf(1 - alpha / 2, df)
    # SciPy's nct.cdf can return NaN far in the tail, where it is 0.
    f = lambda lam: stats.nct.sf(crit, df, lam) + np.nan_to_num(stats.nct.cdf(-crit, df, lam)) - power
    return float(se * scipy.optimize.brentq(f, 0.0, 30.0, xtol=1e-14))


print(f"const DETECTABLE_SE1_DF2: f64 = {detectable(1.0, 2, 0.05, 0.8)!r};")
print(f"const DETECTABLE_SE03_DF14: f64 = {detectable(0.3, 14, 0.05, 0.8)!r};")
print(f"const DETECTABLE_SE1_DF5_BONFERRONI7: f64 = {detectable(1.0, 5, 0.05 / 7, 0.8)!r};")
print(f"const POWER_2_5_DF6: f64 = {float(stats.nct.sf(stats.t.ppf(0.975, 6), 6, 2.5) + stats.nct.cdf(-stats.t.ppf(0.975, 6), 6, 2.5))!r};")
print(f"const HOLM: [f64; 5] = {[float(p) for p in multipletests([0.01, 0.04, 0.03, 0.005, 0.2], method='holm')[1]]!r};")
print(f"const T_TWO_SIDED_P: f64 = {float(2 * stats.t.sf(2.3, 4.5))!r};")
print(f"const T_LOWER_P: f64 = {float(stats.t.cdf(-1.7, 9.0))!r};")
low, high = proportion_confint(14, 21, alpha=0.05, method="beta")
print(f"const CLOPPER_PEARSON_14_OF_21: (f64, f64) = ({float(low)!r}, {float(high)!r});")
low, high = proportion_confint(0, 21, alpha=0.05, method="beta")
print(f"const CLOPPER_PEARSON_0_OF_21: (f64, f64) = ({float(low)!r}, {float(high)!r});")
print(f"const BINOMIAL_MAJORITY_P_17_OF_21: f64 = {float(stats.binomtest(17, 21, 0.5, alternative='greater').pvalue)!r};")
