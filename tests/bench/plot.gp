# plot.gp - plots for make bench; run by tests/bench/run.sh in
# tests/bench/results/ after it wrote the plot_*.dat tables:
#   ttfb.png        lab time to first byte (p50) vs client<->gateway RTT,
#                   one line per mode; left socksbench, right curl
#   throughput.png  loopback relay throughput per server (median), bars
# By hand: cd tests/bench/results && gnuplot ../plot.gp

set terminal pngcairo size 1200,520 font "sans,10" noenhanced
set datafile missing "NaN"
set key autotitle columnhead

# --- time to first byte ------------------------------------------------------
set output "ttfb.png"
set multiplot layout 1,2 title "Time to first byte (p50) vs client<->gateway RTT; gateway<->server RTT 10 ms (lab namespaces)"
set grid
set xlabel "client<->gateway RTT (ms)"
set ylabel "time to first byte (ms)"
set key top left
set xtics (10, 40, 100)
set xrange [0:110]
set yrange [0:*]
set style data linespoints
set title "socksbench (target answers 8 bytes)"
plot for [i=2:7] "plot_ttfb_socksbench.dat" using 1:i lw 2 pt 7 lc i-1
set title "curl %{time_starttransfer} through build/mpgw-run (HTTP)"
plot for [i=2:7] "plot_ttfb_curl.dat" using 1:i lw 2 pt 7 lc i-1
unset multiplot

# --- loopback throughput --------------------------------------------------------
reset
set terminal pngcairo size 1000,520 font "sans,10" noenhanced
set output "throughput.png"
set datafile missing "NaN"
set title "Loopback relay throughput (median), Mbit/s: 1 and 8 streams, download and upload"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set ylabel "Mbit/s"
set yrange [0:*]
set xtics rotate by -20
set key top right autotitle columnhead
plot "plot_throughput.dat" using 2:xtic(1), "" using 3, "" using 4, \
    "" using 5
