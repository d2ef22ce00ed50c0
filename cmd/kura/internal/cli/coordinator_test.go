package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/sqlite"
)

// winsEveryRace is a store in which another replica stores each
// collaboration version just before this one tries to.
type winsEveryRace struct {
	store.Store
}

func (s winsEveryRace) PutCollaboration(ctx context.Context, id string, file []byte, version int64) error {
	other := bytes.Replace(file, []byte("{"), []byte("{ "), 1) // the other replica's file
	if err := s.Store.PutCollaboration(ctx, id, other, version); err != nil {
		return err
	}
	return s.Store.PutCollaboration(ctx, id, file, version)
}

// TestCoordinatorLostRace: a coordinator whose update another replica
// overtook between its read and its write answers 409 concurrent-update,
// and the other replica's version is what is stored.
func TestCoordinatorLostRace(t *testing.T) {
	if store.MaxCollaborationSize != collab.MaxCollaborationSize {
		t.Fatalf("the store keeps collaboration files up to %d bytes, the coordinator accepts %d", store.MaxCollaborationSize, collab.MaxCollaborationSize)
	}
	ctx := context.Background()
	c := newStory(t, 20)
	file, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(dir, "kbs.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _, err := auditlog.GenerateKey(auditlog.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, auditlog.Config{Dir: filepath.Join(dir, "log"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.Close(ctx)
	}()
	co, err := coordinator.New(coordinator.Config{Store: winsEveryRace{st}, Log: l, Nonces: st.Ephemeral()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	co.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/collaborations/"+c.Collab.ID, bytes.NewReader(file))
	airline := c.Parties[demo.Airline]
	httpsig.Sign(req, file, coordinator.SigningContext, airline.Card().Fingerprint, airline.Sign, time.Now())
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Type string `json:"type"`
	}
	json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != http.StatusConflict || p.Type != "https://kura.dev/problems/concurrent-update" {
		t.Errorf("lost race: %d %s, want 409 concurrent-update", resp.StatusCode, p.Type)
	}
	stored, v, err := st.GetCollaboration(ctx, c.Collab.ID)
	if err != nil || v != 1 || bytes.Equal(stored, file) {
		t.Errorf("stored version %d (%v): want the other replica's version 1", v, err)
	}
}
