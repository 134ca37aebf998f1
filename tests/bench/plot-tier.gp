# plot-tier.gp - the two-tier plot for make bench; run by tests/bench/run.sh
# (make_plots_tier) in tests/bench/results/ after it wrote the tables:
#   plot_tier_ttfb_socksbench.dat, plot_tier_ttfb_curl.dat
#       mode, then per WAN RTT: p50, p90 and the model (ms)
#   plot_tier_aggregation.dat   links, fraction of rate1+rate2: TCP, MPTCP,
#                               MPTCP without data in the SYN
#   plot_tier_aggregation_runs.dat  x, fraction: every run
#   plot_tier_failover.dat      per run (blocks): seconds, MiB received
#   plot_tier_failover_cut.dat  run, seconds, MiB when link 3 went down
# Output: tier.png (2 x 2). By hand: cd tests/bench/results &&
# gnuplot ../plot-tier.gp

set terminal pngcairo size 1400,1000 font "sans,10" noenhanced
set output "tier.png"
set datafile missing "NaN"
# A section that did not run leaves its panel with a note.
have(f) = int(system(sprintf("test -s '%s' && echo 1 || echo 0", f)))
skipped(t) = sprintf("set title '%s'; unset xtics; unset ytics; set xrange [0:1]; set yrange [0:1]; set label 9 'not measured in this run' at 0.35,0.5; plot NaN notitle; unset label 9; set xtics; set ytics", t)
set multiplot layout 2,2 title "Two tiers: client --1 ms-- edge ==2 links, W== concentrator --5 ms-- server (lab namespaces)"

# --- time to first byte: bars p50, whisker to p90, x = the model ----------------
set style fill solid 0.75 border -1
set boxwidth 0.36
set grid ytics
set xtics rotate by -25 nomirror
set ylabel "time to first byte (ms)"
set yrange [0:*]
set xrange [-0.6:5.6]
set key top right
do for [tool in "socksbench curl"] {
	set title sprintf("TTFB p50 (bar), p90 (whisker), round-trip model (x): %s", tool)
	f = sprintf("plot_tier_ttfb_%s.dat", tool)
	if (!have(f)) { eval skipped("TTFB: ".tool); continue }
	plot f using ($0 - 0.19):2:xtic(1) skip 1 with boxes lc 1 title "W = 20 ms", \
	    f using ($0 - 0.19):2:2:3 skip 1 with yerrorbars lc rgb "black" pt 0 notitle, \
	    f using ($0 - 0.19):4 skip 1 with points pt 2 ps 1.6 lw 2 lc rgb "black" title "model", \
	    f using ($0 + 0.19):5 skip 1 with boxes lc 2 title "W = 60 ms", \
	    f using ($0 + 0.19):5:5:6 skip 1 with yerrorbars lc rgb "black" pt 0 notitle, \
	    f using ($0 + 0.19):7 skip 1 with points pt 2 ps 1.6 lw 2 lc rgb "black" notitle
}

# --- aggregation --------------------------------------------------------------
set title "Aggregation through the chain: goodput / (rate1 + rate2), median (bar), each run (dot)"
set ylabel "fraction of the summed link rates"
set yrange [0:1.25]
set xrange [-0.6:1.6]
set xtics norotate
if (!have("plot_tier_aggregation.dat")) { eval skipped("Aggregation") } else {
set arrow 1 from -0.6,0.85 to 1.6,0.85 nohead dt 2 lc rgb "gray40"
set label 1 "0.85 (simult_flows selftest)" at -0.55,0.88 tc rgb "gray40"
set boxwidth 0.26
plot "plot_tier_aggregation.dat" using ($0 - 0.27):2:xtic(1) skip 1 with boxes lc 3 title "edge upstream TCP", \
    "" using 0:3 skip 1 with boxes lc 4 title "edge upstream MPTCP", \
    "" using ($0 + 0.27):4 skip 1 with boxes lc 6 title "MPTCP, no data in the SYN (edge Fast Open off)", \
    "plot_tier_aggregation_runs.dat" using 1:2 with points pt 7 ps 1 lc rgb "black" title "each run"
}
unset arrow 1
unset label 1

# --- failover -----------------------------------------------------------------
set title "Failover through the chain: received MiB over time, the edge's link 3 down (o)"
set style data lines
set ylabel "MiB received by the client"
set xlabel "seconds"
set yrange [0:*]
set xrange [0:*]
set xtics autofreq
set key top left
if (!have("plot_tier_failover.dat")) { eval skipped("Failover") } else {
plot for [i=0:*] "plot_tier_failover.dat" index i using 1:2 with lines lw 2 title sprintf("run %d", i + 1), \
    "plot_tier_failover_cut.dat" using 2:3 with points pt 6 ps 2 lw 2 lc rgb "black" title "link 3 down"
}
unset multiplot
