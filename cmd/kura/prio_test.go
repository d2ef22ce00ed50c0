package main

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"

	"github.com/kura-cc/kura/cmd/kura/internal/cli"
)

// TestPrioProcesses: the leader and the helper are two `kura serve --roles
// aggregator` processes on loopback; contributors submit with `kura mpc
// submit` and the collector's `kura mpc collect` gets exactly the
// plaintext sum of the reports, each a process of its own.
func TestPrioProcesses(t *testing.T) {
	ctx := context.Background()
	k := kuraProcs(t)
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	must := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := k.split(ctx, args...)
		if code != cli.ExitOK {
			t.Fatalf("kura %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		return stdout
	}
	for _, name := range []string{"leader", "helper", "collector"} {
		must("party", "init", name, "-o", p(name))
	}
	// The task names the aggregators' URLs, so their ports are chosen
	// first.
	var addrs [2]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = l.Addr().String()
		l.Close()
	}
	must("mpc", "task", "new", "--type", "sum", "--bits", "16", "--min-batch", "10",
		"--leader", "http://"+addrs[0], "--helper", "http://"+addrs[1], "--leader-card", p("leader/card.json"),
		"--helper-card", p("helper/card.json"), "--collector-card", p("collector/card.json"), "-o", p("task"))
	for i, role := range []string{"leader", "helper"} {
		k.background(t, "serve", "--roles", "aggregator", "--data", p(role+"-data"), "--addr", addrs[i],
			"--aggregator-task", p("task/"+role+".json"), "--aggregator-identity", p(role))
	}
	for _, v := range []string{"7", "1000", "65535"} {
		must("mpc", "submit", p("task/task.json"), "--value", v, "--count", "4")
	}
	const want = 4 * (7 + 1000 + 65535)
	var res struct {
		Reports   uint64   `json:"reports"`
		Aggregate []uint64 `json:"aggregate"`
	}
	out := must("mpc", "collect", p("task/task.json"), "--identity", p("collector"), "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Reports != 12 || len(res.Aggregate) != 1 || res.Aggregate[0] != want {
		t.Fatalf("collect: %v\n%s\nwant 12 reports summing to %d", err, out, want)
	}
}
