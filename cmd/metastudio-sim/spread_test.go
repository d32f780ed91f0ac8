package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/metastudio-exporter/metastudio_exporter/internal/testkit"
	"github.com/metastudio-exporter/metastudio_exporter/simulator"
)

func TestSpreadFlagErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"negative spread", []string{"--spread=-1h"}, "--spread must not be negative, not -1h0m0s"},
		{"negative running", []string{"--tasks=5", "--spread=1h", "--running=-1"}, "--running must be between 0 and --tasks (5), not -1"},
		{"more running than tasks", []string{"--tasks=5", "--spread=1h", "--running=6"}, "--running must be between 0 and --tasks (5), not 6"},
		{"running without spread", []string{"--tasks=5", "--running=2"}, "--running needs --spread"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stderr := runFails(t, append([]string{"--web.listen-address=127.0.0.1:0"}, c.args...))
			if got := strings.TrimSpace(stderr); got != programName+": "+c.want {
				t.Errorf("stderr %q, want %q", got, programName+": "+c.want)
			}
		})
	}
}

// TestSpreadFlags: --spread and --running reach the simulator: with 4 tasks over 2 h and 1
// running, task 0 began 15 minutes before the start and runs, task 3 began 105 minutes
// before and has ended.
func TestSpreadFlags(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testkit.Buffer
	done := make(chan int, 1)
	started := time.Now()
	go func() {
		done <- run(ctx, []string{"--web.listen-address=127.0.0.1:0", "--tasks=4", "--spread=2h", "--running=1",
			"--field-style=number", "--project-id=p1", "--token=tok"}, &stdout, &stderr)
	}()
	addr := waitAddress(t, &stderr)
	show := func(i int) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/p1/ies/task/"+simulator.TaskID(i), nil)
		req.Header.Set("X-Auth-Token", "tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("task %d: %d %v", i, resp.StatusCode, err)
		}
		return m
	}
	cases := []struct {
		task    int
		ago     time.Duration
		running bool
	}{
		{0, 15 * time.Minute, true},
		{3, 105 * time.Minute, false},
	}
	for _, c := range cases {
		m := show(c.task)
		begin, _ := m["begin_time"].(float64)
		// The start instant lies between started and now.
		lo, hi := started.Add(-c.ago-time.Second).UnixMilli(), time.Now().Add(-c.ago+time.Second).UnixMilli()
		if int64(begin) < lo || int64(begin) > hi {
			t.Errorf("task %d: begin_time %v, want %s before the start", c.task, m["begin_time"], c.ago)
		}
		if _, ended := m["end_time"].(float64); ended == c.running {
			t.Errorf("task %d: end_time %v, want running %v", c.task, m["end_time"], c.running)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit code %d", code)
	}
	if out := stderr.String(); !strings.Contains(out, "spread=2h0m0s running=1") {
		t.Errorf("the startup line does not say the spread: %s", out)
	}
}
