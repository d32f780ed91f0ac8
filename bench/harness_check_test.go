//go:build linux

package bench

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

// Quick checks of the harness; the benchmarks themselves run only with -bench.

func TestParsers(t *testing.T) {
	stat := []byte("4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 123 45 0 0 20 0 9 0 1 2 3\n")
	if d, err := parseStatCPU(stat); err != nil || d != 168*clockTick {
		t.Errorf("parseStatCPU = %v, %v; want %v", d, err, 168*clockTick)
	}
	status := []byte("Name:\tx\nVmPeak:\t  2000 kB\nVmHWM:\t  1536 kB\nVmRSS:\t 1000 kB\n")
	if n, err := parseVmHWM(status); err != nil || n != 1536<<10 {
		t.Errorf("parseVmHWM = %d, %v", n, err)
	}
	body := []byte("# HELP metastudio_task_scrape_success x\n# TYPE metastudio_task_scrape_success gauge\n" +
		"metastudio_task_scrape_success{project=\"default\",task_id=\"a\"} 1\n" +
		"metastudio_task_scrape_success{project=\"team-b\",task_id=\"b\"} 0\n" +
		"metastudio_task_scrape_success{project=\"team-b\",task_id=\"c\"} 1\nother 1")
	if tasks, ok := countTasks(body); tasks != 3 || ok != 2 {
		t.Errorf("countTasks = %d, %d; want 3, 2", tasks, ok)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if _, err := processCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
	if n, err := peakRSS(os.Getpid()); err != nil || n <= 0 {
		t.Errorf("peakRSS = %d, %v", n, err)
	}
}

// TestConfigs checks that the exporter accepts every config the benchmarks write.
func TestConfigs(t *testing.T) {
	getenv := func(name string) string {
		return map[string]string{"CLOUD_SDK_AK": benchAK, "CLOUD_SDK_SK": benchSK}[name]
	}
	for _, c := range []exporterConfig{{tasks: 3}, {tasks: 3, finishedTTL: time.Hour}, {finishedTTL: time.Hour, discovery: true}} {
		cfg, _, err := config.Parse([]byte(c.yaml("http://127.0.0.1:1")), getenv)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if len(cfg.Tasks) != c.tasks || cfg.Scrape.Concurrency != benchConcurrency || cfg.Scrape.MaxRequestsPerSecond != 0 ||
			cfg.Cache.FinishedTTL != c.finishedTTL || cfg.Discovery.Enabled != c.discovery {
			t.Errorf("%+v: parsed as %+v", c, cfg)
		}
	}
}

// TestSimulatorChild starts a simulator child and makes one bare GET and one SearchTask.
func TestSimulatorChild(t *testing.T) {
	sim := startChild(t, roleSim, envTasks+"=20", envShape+"="+shapeDiscovery, envLatency+"=0s")
	if show, search := sim.requests(t); show != 0 || search != 0 {
		t.Fatalf("fresh simulator counted %d, %d", show, search)
	}
	if err := bareGET(scraper, sim.url+"/v2/"+benchProject+"/ies/task/"+simulator.TaskID(19)); err != nil {
		t.Fatal(err)
	}
	resp, err := scraper.Get(sim.url + "/v2/" + benchProject + "/ies/task") // unsigned: refused, still counted
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if show, search := sim.requests(t); show != 1 || search != 1 {
		t.Errorf("after one ShowTask and one SearchTask the simulator counted %d, %d", show, search)
	}
	if d, err := processCPU(sim.cmd.Process.Pid); err != nil || d <= 0 {
		t.Errorf("CPU time of the child: %v, %v", d, err)
	}
}

// TestPlainCollector checks that the plain registry holds the 9 series of a warm scrape
// per task, under the exporter's names.
func TestPlainCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newPlainCollector(3, beginOf(3, shapeFinished, 0, time.Now())))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if !slices.Contains(collector.MetricNames, mf.GetName()) {
			t.Errorf("%s is not one of the exporter's metrics", mf.GetName())
		}
		series += len(mf.GetMetric())
	}
	if len(mfs) != 9 || series != 27 {
		t.Errorf("%d families, %d series; want 9, 27", len(mfs), series)
	}
	now := time.Now()
	if f := taskFields(0, now, false); f["total_count"] != int64(200) || f["end_time"] == nil {
		t.Errorf("task 0 (numbers, finished): %v", f)
	}
	if f := taskFields(1, now, true); f["total_count"] != "237" || f["end_time"] != nil || f["task_status"] != "1" {
		t.Errorf("task 1 (strings, in progress): %v", f)
	}
}
