"""native − flex per net, paired: mean with a 95% t-interval (df = nets − 1), Wilcoxon's
signed-rank p and the sign counts, for held-out top-1 and training accuracy, in points.
Reads the caches run.sh filled (tpipe show --json)."""
import json, os, subprocess, sys
from statistics import mean, stdev

from scipy import stats

tpipe = os.environ["TPIPE"]
seeds, batches = int(sys.argv[1]), sys.argv[2:]


def metric(batch, backend, node, path):
    record = subprocess.run(
        [tpipe, "show", f"batch{batch}.yaml", node, "--cache", f"cache-{batch}-{backend}", "--json"],
        check=True, capture_output=True, text=True).stdout
    value = json.loads(record)["metrics"]
    for key in path:
        value = value[key]
    return value


for batch in batches:
    nets = [(task, seed) for task in "AB" for seed in range(seeds)]
    for label, node, path in [("held-out top-1", "eval_base{}_s{}", ("scores", "top1")),
                              ("training accuracy", "base{}_s{}", ("train_accuracy",))]:
        diffs = [100 * (metric(batch, "native", node.format(*net), path)
                        - metric(batch, "flex", node.format(*net), path)) for net in nets]
        n = len(diffs)
        half = stats.t.ppf(0.975, n - 1) * stdev(diffs) / n ** 0.5
        wilcoxon = stats.wilcoxon(diffs).pvalue if any(diffs) else 1.0
        print(f"batch {batch}, {label}: native − flex {mean(diffs):+.2f} points, 95% CI "
              f"[{mean(diffs) - half:+.2f}, {mean(diffs) + half:+.2f}] (df {n - 1}, paired t "
              f"p = {stats.ttest_1samp(diffs, 0).pvalue:.3f}); Wilcoxon p = {wilcoxon:.3f}; "
              f"{sum(d > 0 for d in diffs)} higher, {sum(d < 0 for d in diffs)} lower")
