// Command proxycpu measures meshscope-proxy's CPU per 1000 requests at a
// constant rate, several binaries and nginx (1 worker) taking turns in
// short cells, for comparing a change before and after on a shared
// machine (CPU-seconds, not latency):
//
//	go run ./bench/proxycpu -bins before=/tmp/old,after=/tmp/new -rounds 5 -dur 5s
//
// Each proxy runs with an outbound listener to an in-process 1 KB upstream
// and metrics and tracing exported to an in-process OTLP sink, as the main
// row of bench/proxy. -proto h2c or -proto grpc measures the h2c and gRPC
// rows of bench/proxy instead: prior-knowledge HTTP/2 GETs to the same
// upstream (which serves h2c; nginx forwards over HTTP/1.1), or unary
// grpc.health.v1.Health/Check calls to an in-process gRPC upstream (nginx
// grpc_pass). -attach runs a command during each cell (for perf or
// strace on the measured process):
//
//	-attach 'perf stat -e task-clock,context-switches -p {pid} -- sleep {dur}'
//
// -floor adds a minimal Go forwarder with the proxy's socket I/O
// (floor.go), the floor under the proxy's own per-request work.
//
// Each cell's line also gives the CPU per request of the load generator's
// process (this one: load generator, OTLP sink, and the upstream unless
// -upstream-process) and of the separate upstream process, so a closed
// loop shows where a target's throughput went: a target that answers
// later makes the processes around it pay more per request, not only
// itself. The summary gives each target's mean req/s next to its CPU.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/bench/otlpsink"
	"github.com/meshscope/meshscope/bench/procstat"
	"github.com/meshscope/meshscope/demo/freeport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type target struct {
	name, addr string
	cmd        *exec.Cmd
	pid        int
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "proxycpu: "+format+"\n", args...)
	os.Exit(1)
}

func freePortOrFail() string {
	a, err := freeport.Addrs(1)
	if err != nil {
		fail("%v", err)
	}
	return a[0]
}

func main() {
	bins := flag.String("bins", "", "name=path,...")
	withNginx := flag.Bool("nginx", true, "")
	rounds := flag.Int("rounds", 3, "")
	dur := flag.Duration("dur", 5*time.Second, "")
	rate := flag.Float64("rate", 1000, "requests per second; 0 runs a closed loop (each connection sends its next request when the last is answered)")
	conns := flag.Int("conns", 16, "")
	attach := flag.String("attach", "", "shell command run during each cell; {pid} {dur} {name} {round} replaced")
	extra := flag.String("args", "", "extra proxy args")
	proto := flag.String("proto", "h1", "h1, h2c or grpc")
	withFloor := flag.Bool("floor", false, "also measure the floor: a minimal Go forwarder with the proxy's socket I/O (floor.go; HTTP/1.1 only)")
	floorServe := flag.String("floor-serve", "", "internal: serve the floor forwarder, listen=upstream")
	upProcess := flag.Bool("upstream-process", false, "serve the HTTP upstream from a separate process, as bench/proxy does, instead of inside the load generator's")
	upServe := flag.String("upstream-serve", "", "internal: serve the HTTP upstream on this address")
	size := flag.Int("size", 1024, "HTTP response body size in bytes (bench/proxy's 16 KB row: 16384)")
	flag.Parse()
	body := bytes.Repeat([]byte("x"), *size)
	upHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body))) // as bench/proxy's upstream
		w.Write(body)
	})
	// HTTP/1.1 and h2c with prior knowledge on one port, as bench/proxy's
	// upstream.
	upProtos := new(http.Protocols)
	upProtos.SetHTTP1(true)
	upProtos.SetUnencryptedHTTP2(true)
	if *upServe != "" {
		srv := &http.Server{Addr: *upServe, Protocols: upProtos, Handler: upHandler}
		fail("upstream: %v", srv.ListenAndServe())
	}
	if *floorServe != "" {
		listen, up, _ := strings.Cut(*floorServe, "=")
		if err := serveFloor(listen, up); err != nil {
			fail("floor: %v", err)
		}
		return
	}
	if *proto != "h1" && *proto != "h2c" && *proto != "grpc" {
		fail("-proto: %q is not h1, h2c or grpc", *proto)
	}
	if *withFloor && *proto != "h1" {
		fail("-floor forwards HTTP/1.1 only")
	}
	if *bins == "" && !*withNginx {
		fail("nothing to measure: give -bins name=path,... or -nginx")
	}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	upSrv := &http.Server{Protocols: upProtos, Handler: upHandler}
	go upSrv.Serve(upLn)
	up := upLn.Addr().String()
	upPid := 0 // the upstream's own process, with -upstream-process
	if *upProcess {
		self, err := os.Executable()
		if err != nil {
			fail("upstream: %v", err)
		}
		up = freePortOrFail()
		cmd := exec.Command(self, "-upstream-serve", up, "-size", fmt.Sprint(*size))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			fail("start upstream: %v", err)
		}
		defer cmd.Process.Kill()
		upPid = cmd.Process.Pid
		for i := 0; i < 100; i++ {
			if c, err := net.Dial("tcp", up); err == nil {
				c.Close()
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	gupLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	gup := grpc.NewServer()
	healthpb.RegisterHealthServer(gup, health.NewServer())
	go gup.Serve(gupLn)
	proxyUp := up // where the proxies forward
	if *proto == "grpc" {
		proxyUp = gupLn.Addr().String()
	}
	sink, err := otlpsink.Start()
	if err != nil {
		fail("%v", err)
	}
	defer sink.Close()
	dir, _ := os.MkdirTemp("", "h1cpu")
	var ts []*target
	for _, b := range strings.Split(*bins, ",") {
		if b == "" {
			continue
		}
		name, path, ok := strings.Cut(b, "=")
		if !ok || name == "" || path == "" {
			fail("-bins: %q is not name=path", b)
		}
		listen, admin := freePortOrFail(), freePortOrFail()
		args := []string{"--service", "bench-client", "--admin", admin, "--upstream", listen + "=bench-upstream@" + proxyUp, "--collector", sink.Addr}
		if *extra != "" {
			args = append(args, strings.Fields(*extra)...)
		}
		cmd := exec.Command(path, args...)
		cmd.Stderr, _ = os.Create(filepath.Join(dir, name+".log"))
		if err := cmd.Start(); err != nil {
			fail("start %s: %v", path, err)
		}
		ts = append(ts, &target{name: name, addr: listen, cmd: cmd, pid: cmd.Process.Pid})
		for i := 0; i < 100; i++ {
			if r, err := http.Get("http://" + admin + "/ready"); err == nil && r.StatusCode == 200 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if *withFloor {
		self, err := os.Executable()
		if err != nil {
			fail("floor: %v", err)
		}
		listen := freePortOrFail()
		cmd := exec.Command(self, "-floor-serve", listen+"="+up)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1") // as meshscope-proxy's default --max-procs 1
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			fail("start floor: %v", err)
		}
		for i := 0; i < 100; i++ {
			if c, err := net.Dial("tcp", listen); err == nil {
				c.Close()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		ts = append(ts, &target{name: "floor", addr: listen, cmd: cmd, pid: cmd.Process.Pid})
	}
	if *withNginx {
		listen := freePortOrFail()
		nd := filepath.Join(dir, "nginx")
		os.MkdirAll(nd, 0o777)
		os.Chmod(nd, 0o777)
		conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/cb; proxy_temp_path %[1]s/p; fastcgi_temp_path %[1]s/f; uwsgi_temp_path %[1]s/u; scgi_temp_path %[1]s/s;
  keepalive_requests 1000000;
  upstream app { server %[2]s; keepalive 64; keepalive_requests 1000000; }
  upstream grpcapp { server %[4]s; keepalive 64; keepalive_requests 1000000; }
  server { listen %[3]s%[5]s; location / { %[6]s } }
}
`, nd, up, listen, gupLn.Addr().String(), map[bool]string{true: " http2"}[*proto != "h1"],
			map[bool]string{true: "grpc_pass grpc://grpcapp;", false: `proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";`}[*proto == "grpc"])
		cp := filepath.Join(nd, "nginx.conf")
		os.WriteFile(cp, []byte(conf), 0o644)
		cmd := exec.Command("nginx", "-c", cp, "-p", nd)
		cmd.Stderr, _ = os.Create(filepath.Join(dir, "nginx.log"))
		if err := cmd.Start(); err != nil {
			fail("start nginx: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
		// the worker is the child
		pids, _ := procstat.Tree(cmd.Process.Pid)
		w := cmd.Process.Pid
		if len(pids) > 1 {
			w = pids[1]
		}
		ts = append(ts, &target{name: "nginx", addr: listen, cmd: cmd, pid: w})
	}
	defer func() {
		for _, t := range ts {
			t.cmd.Process.Signal(syscall.SIGTERM)
			t.cmd.Wait()
		}
	}()
	sums, rpss := map[string][]float64{}, map[string][]float64{}
	for r := 1; r <= *rounds; r++ {
		for _, t := range ts {
			cfg := loadgen.Config{Addr: t.addr, Host: "bench-upstream", Connections: *conns, Rate: *rate, Duration: *dur, Warmup: 300 * time.Millisecond}
			switch *proto {
			case "h2c":
				cfg.NewExchanger = loadgen.NewH2C(t.addr, "bench-upstream", "/")
			case "grpc":
				cfg.NewExchanger = loadgen.NewGRPCHealth(t.addr, "")
			}
			var ac *exec.Cmd
			done := make(chan *loadgen.Result)
			go func() {
				run := loadgen.RunConstantRate
				if *rate == 0 {
					run = loadgen.RunClosedLoop
				}
				res, err := run(context.Background(), cfg)
				if err != nil {
					fmt.Fprintln(os.Stderr, "proxycpu:", t.name, err)
				}
				done <- res
			}()
			time.Sleep(300 * time.Millisecond)
			startCPU, _ := procstat.CPUTime(t.pid)
			startSelf, startUp := selfCPU(), upCPU(upPid)
			t0 := time.Now()
			if *attach != "" {
				s := strings.NewReplacer("{pid}", fmt.Sprint(t.pid), "{dur}", fmt.Sprintf("%.1f", dur.Seconds()-0.2), "{name}", t.name, "{round}", fmt.Sprint(r)).Replace(*attach)
				ac = exec.Command("sh", "-c", s)
				ac.Stdout, ac.Stderr = os.Stderr, os.Stderr
				ac.Start()
			}
			res := <-done
			if res == nil || res.Requests == 0 {
				fmt.Printf("round %d %-8s no requests answered\n", r, t.name)
				continue
			}
			endCPU, _ := procstat.CPUTime(t.pid)
			endSelf, endUp := selfCPU(), upCPU(upPid)
			el := time.Since(t0)
			if ac != nil {
				ac.Wait()
			}
			n := float64(res.Requests) * el.Seconds() / res.Elapsed.Seconds()
			per := (endCPU - startCPU).Seconds() / n * 1000
			sums[t.name] = append(sums[t.name], per)
			rpss[t.name] = append(rpss[t.name], res.Throughput())
			around := fmt.Sprintf("load generator %.1f", (endSelf-startSelf).Seconds()/n*1e6)
			if upPid != 0 {
				around += fmt.Sprintf(", upstream %.1f", (endUp-startUp).Seconds()/n*1e6)
			}
			fmt.Printf("round %d %-8s %.4f CPU-s/1000 req (%d req, %.0f req/s, err %d, p50 %.3f ms, p99 %.3f ms; %s µs CPU/req)\n", r, t.name, per, res.Requests, res.Throughput(), res.Errors, float64(res.Latency.Quantile(0.5))/1e6, float64(res.Latency.Quantile(0.99))/1e6, around)
		}
	}
	for _, t := range ts {
		v := sums[t.name]
		if len(v) == 0 {
			continue
		}
		fmt.Printf("%-8s mean %.4f %v, mean %.0f req/s\n", t.name, mean(v), v, mean(rpss[t.name]))
	}
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// selfCPU is this process's own user+system CPU time (its children, the
// measured servers, are not in it).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// upCPU is the upstream process's CPU time; 0 without one.
func upCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, _ := procstat.CPUTime(pid)
	return d
}
