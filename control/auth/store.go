package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Token sources.
const (
	SourceFile = "auth-file" // the --auth-file; changed by editing it
	SourceAPI  = "api"       // created through the token API, kept in the token store
)

// Errors of the token API.
var (
	ErrAuthOff       = errors.New("the server runs without --auth-file: there are no tokens to manage")
	ErrNameTaken     = errors.New("name taken")
	ErrTokenNotFound = errors.New("no such token")
	ErrTokenInFile   = errors.New("the token is in the --auth-file; remove its line there and restart")
	ErrStoreWrite    = errors.New("token store")
)

// TokenInfo describes a token without its secret or hash.
type TokenInfo struct {
	Name   string `json:"name"`
	Role   Role   `json:"role"`
	Source string `json:"source"` // auth-file or api
}

// loadStore reads the token store (the tokens: section of an auth file);
// a missing file is an empty store.
func loadStore(path string) ([]Token, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreWrite, err)
	}
	f, err := ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("token store %s: %w", path, err)
	}
	if len(f.Users) > 0 {
		return nil, fmt.Errorf("token store %s: users: the store holds tokens only", path)
	}
	return f.Tokens, nil
}

// saveStore writes the API tokens (hashes only) atomically, mode 0600.
func saveStore(path string, tokens []Token) error {
	b, err := yaml.Marshal(File{Tokens: tokens})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStoreWrite, err)
	}
	b = append([]byte("# Tokens created through /api/mesh/v1/tokens: SHA-256 hashes only. Managed by the server.\n"), b...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreWrite, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreWrite, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreWrite, err)
	}
	return nil
}

// Tokens lists every token, auth-file ones first, each by name.
func (a *Authenticator) Tokens() []TokenInfo {
	a.tokMu.RLock()
	defer a.tokMu.RUnlock()
	out := make([]TokenInfo, 0, len(a.tokens))
	for _, e := range a.tokens {
		out = append(out, TokenInfo{Name: e.name, Role: e.role, Source: e.source})
	}
	slices.SortStableFunc(out, func(x, y TokenInfo) int {
		if x.Source != y.Source {
			if x.Source == SourceFile {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	return out
}

// CreateToken makes a token of role named name, keeps its hash in the
// token store and returns the token (shown once; never stored).
func (a *Authenticator) CreateToken(name string, role Role) (string, TokenInfo, error) {
	if !a.Enabled() {
		return "", TokenInfo{}, ErrAuthOff
	}
	if a.cfg.TokenStore == "" {
		return "", TokenInfo{}, errors.New("the server has no token store (Config.TokenStore)")
	}
	tok, err := NewToken()
	if err != nil {
		return "", TokenInfo{}, err
	}
	t := Token{Name: name, Role: role, SHA256: HashToken(tok)}
	if err := (&File{Tokens: []Token{t}}).Validate(); err != nil {
		return "", TokenInfo{}, err
	}
	a.tokMu.Lock()
	defer a.tokMu.Unlock()
	if a.nameTaken(name) {
		return "", TokenInfo{}, fmt.Errorf("name %q: %w by a token or user", name, ErrNameTaken)
	}
	e := tokenEntry{hash: sha256.Sum256([]byte(tok)), name: name, role: role, source: SourceAPI}
	next := append(slices.Clone(a.tokens), e)
	if err := saveStore(a.cfg.TokenStore, apiTokens(next)); err != nil {
		return "", TokenInfo{}, err
	}
	a.tokens = next
	return tok, TokenInfo{Name: name, Role: role, Source: SourceAPI}, nil
}

// RevokeToken deletes an API-created token and ends the sessions that
// logged in with it.
func (a *Authenticator) RevokeToken(name string) (TokenInfo, error) {
	if !a.Enabled() {
		return TokenInfo{}, ErrAuthOff
	}
	a.tokMu.Lock()
	i := slices.IndexFunc(a.tokens, func(e tokenEntry) bool { return e.name == name })
	if i < 0 {
		a.tokMu.Unlock()
		return TokenInfo{}, fmt.Errorf("token %q: %w", name, ErrTokenNotFound)
	}
	e := a.tokens[i]
	if e.source != SourceAPI {
		a.tokMu.Unlock()
		return TokenInfo{}, fmt.Errorf("token %q: %w", name, ErrTokenInFile)
	}
	next := slices.Delete(slices.Clone(a.tokens), i, i+1)
	if err := saveStore(a.cfg.TokenStore, apiTokens(next)); err != nil {
		a.tokMu.Unlock()
		return TokenInfo{}, err
	}
	a.tokens = next
	a.tokMu.Unlock()
	a.mu.Lock()
	for sid, s := range a.sessions {
		if s.id.Name == name {
			delete(a.sessions, sid)
		}
	}
	a.mu.Unlock()
	return TokenInfo{Name: e.name, Role: e.role, Source: e.source}, nil
}

// nameTaken: names are unique across tokens and users. Called with tokMu held.
func (a *Authenticator) nameTaken(name string) bool {
	if _, ok := a.users[name]; ok {
		return true
	}
	return slices.ContainsFunc(a.tokens, func(e tokenEntry) bool { return e.name == name })
}

func apiTokens(es []tokenEntry) []Token {
	var out []Token
	for _, e := range es {
		if e.source == SourceAPI {
			out = append(out, Token{Name: e.name, Role: e.role, SHA256: fmt.Sprintf("%x", e.hash)})
		}
	}
	return out
}
