package auth

import (
	"flag"
	"net/http"
	"os"
)

// TokenFileEnv is the environment variable the CLI's --token-file
// defaults to.
const TokenFileEnv = "MESHSCOPE_TOKEN_FILE"

// TokenFileFlag registers --token-file (default $MESHSCOPE_TOKEN_FILE).
func TokenFileFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "token-file", os.Getenv(TokenFileEnv), "`file` holding a bearer token for a server run with --auth-file (default $"+TokenFileEnv+")")
}

// ClientToken reads the token of --token-file; "" for no file.
func ClientToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	return ReadTokenFile(path)
}

// SetBearer adds the token to a request (nothing for "").
func SetBearer(r *http.Request, token string) {
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
}

// BearerTransport adds a bearer token to every request.
type BearerTransport struct {
	Token string
	// Base defaults to http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t BearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.Token == "" {
		return base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	SetBearer(r, t.Token)
	return base.RoundTrip(r)
}
