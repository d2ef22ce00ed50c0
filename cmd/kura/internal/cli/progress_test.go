package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "sealing", 4<<20)
	if p.active {
		t.Fatal("progress active on a non-terminal writer")
	}
	p.update(1 << 20)
	if buf.Len() != 0 {
		t.Fatalf("progress drew on a non-terminal: %q", buf.String())
	}

	p.active = true // as on a terminal
	p.start = time.Now().Add(-time.Second)
	p.update(1 << 20)
	line := buf.String()
	for _, want := range []string{"\rsealing [", " 25.0%", "1.0 MiB / 4.0 MiB", "/s", "ETA 3s"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	buf.Reset()
	p.update(8 << 20) // more than the estimate (converted data can grow)
	if !strings.Contains(buf.String(), "100.0%") {
		t.Errorf("overshoot not clamped: %q", buf.String())
	}
	p.finish()
	if !strings.HasSuffix(buf.String(), "\n") {
		t.Error("finish did not end the line")
	}
}
