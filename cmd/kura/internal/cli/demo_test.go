package cli

import (
	"context"
	"strings"
	"testing"
)

// TestDemo runs `kura demo`, the first of a new user's two commands, end to
// end, and checks that each episode told its story.
func TestDemo(t *testing.T) {
	code, out := run(context.Background(), "demo")
	if code != ExitOK {
		t.Fatalf("kura demo: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"== Clean room",
		"deletion receipt verified",
		"== Secret computation",
		"both owners' agents signed this run",
		"a third run is refused before any data is read",
		"privacy budget exhausted",
		"== Time-release vault",
		"== Confidential inference",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kura demo did not say %q", want)
		}
	}
}
