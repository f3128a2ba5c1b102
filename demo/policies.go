package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"time"
)

// policiesYAML is the policy set the demo applies on start.
//
//go:embed policies.yaml
var policiesYAML []byte

// applyDocuments posts policy documents (YAML) to the server's apply API.
func applyDocuments(ctx context.Context, httpAddr, what string, docs []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+"/api/mesh/v1/apply", bytes.NewReader(docs))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("X-Meshscope-Who", "demo")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("demo: applying %s: %w", what, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("demo: applying %s: server answered %d: %s", what, res.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}
