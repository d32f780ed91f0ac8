//lint:file-ignore SA1019 the classic dashboard JSON (dashboard.Dashboard) is what every Grafana imports; dashboardv2 is Grafana 12 only.

package main

// The committed dashboard is the generated one (run `make dashboard` after changing
// main.go), and it decodes strictly into the Grafana Foundation SDK's dashboard type, which
// refuses unknown and mistyped fields.

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const committed = "metastudio-dashboard.json"

func TestCommittedDashboardIsGenerated(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what main.go generates: run `make dashboard`", committed)
	}
}

func TestDashboardDecodesStrictly(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard.Dashboard
	if err := strict(d.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("%s does not decode strictly: %v", committed, err)
	}
	if d.Uid == nil || *d.Uid != "metastudio-tasks" || len(d.Panels) < 10 {
		t.Errorf("decoded dashboard: uid %v, %d panels", d.Uid, len(d.Panels))
	}
	// A field Grafana does not know is refused: the check can fail.
	bad := bytes.Replace(raw, []byte(`"refresh": "1m"`), []byte(`"refresh": "1m", "refreshh": "1m"`), 1)
	if err := strict(new(dashboard.Dashboard).UnmarshalJSONStrict(bad)); err == nil {
		t.Error("a dashboard with an unknown field decoded strictly")
	}
}

// strict returns the errors of an UnmarshalJSONStrict. The SDK (v0.0.22) returns its
// cog.BuildErrors slice as an error even when it is empty, a non-nil error that says
// nothing: an empty list is success.
func strict(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}
