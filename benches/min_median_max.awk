# Reads "contender<TAB>figure" lines (sorted by contender, then figure) and prints, per
# contender, min / median / max and every figure. Used by compare_with_pytorch.sh and
# paper_net_vs_pytorch.sh.
BEGIN { FS = "\t" }
{ values[$1] = values[$1] " " $2 }
END {
  for (name in values) {
    n = split(substr(values[name], 2), v, " ")
    printf "%-36s min %7.1f  median %7.1f  max %7.1f img/s  (%d figures: %s)\n",
      name, v[1], v[int((n + 1) / 2)], v[n], n, substr(values[name], 2)
  }
}
