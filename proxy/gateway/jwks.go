package gateway

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"sync"
	"time"
)

// maxJWKSBytes bounds a key set document.
const maxJWKSBytes = 1 << 20

// missRefetch is the least time between two fetches caused by unknown kids
// (a flood of made-up kids must not become a flood of fetches).
const missRefetch = 10 * time.Second

// keySet is an issuer's JSON Web Key Set from a file or URL: parsed keys by
// kid, fetched again every refresh, when a file changes, and (at most
// once per missRefetch) when a token names an unknown kid. A failed fetch
// keeps the keys that were good.
type keySet struct {
	file, url string
	refresh   time.Duration
	client    *http.Client
	logger    *slog.Logger

	mu        sync.Mutex
	keys      map[string]crypto.PublicKey
	fetched   time.Time // last fetch attempt
	statted   time.Time // last check of the file's modification time
	lastMiss  time.Time
	fileMod   time.Time
	fileSize  int64
	lastError error

	verified verifiedCache
}

func newKeySet(file, url string, refresh time.Duration, client *http.Client, logger *slog.Logger) *keySet {
	return &keySet{file: file, url: url, refresh: refresh, client: client, logger: logger}
}

// source names the key set in logs and errors.
func (k *keySet) source() string {
	if k.file != "" {
		return k.file
	}
	return k.url
}

// key returns the key for kid ("" = the only key), loading or refreshing
// the set as needed.
func (k *keySet) key(ctx context.Context, kid string, now time.Time) (crypto.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	stale := k.keys == nil || now.Sub(k.fetched) >= k.refresh
	if k.file != "" && k.keys != nil && !stale && now.Sub(k.statted) >= time.Second {
		k.statted = now
		stale = k.fileChanged()
	}
	if stale {
		k.load(ctx, now)
	}
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	if k.keys != nil && !stale && (k.file != "" || now.Sub(k.lastMiss) >= missRefetch) {
		// Unknown kid: the issuer may have rotated its keys.
		k.lastMiss = now
		if k.file == "" || k.fileChanged() {
			k.load(ctx, now)
		}
		if key, ok := k.lookup(kid); ok {
			return key, nil
		}
	}
	if k.keys == nil {
		return nil, authErr(reasonKeysMissing)
	}
	return nil, authErr(reasonUnknownKey)
}

func (k *keySet) lookup(kid string) (crypto.PublicKey, bool) {
	if kid == "" && len(k.keys) == 1 {
		for _, key := range k.keys {
			return key, true
		}
	}
	key, ok := k.keys[kid]
	return key, ok && kid != ""
}

func (k *keySet) fileChanged() bool {
	st, err := os.Stat(k.file)
	return err == nil && (!st.ModTime().Equal(k.fileMod) || st.Size() != k.fileSize)
}

// load fetches and parses the set; on failure the old keys stay.
func (k *keySet) load(ctx context.Context, now time.Time) {
	k.fetched = now
	var data []byte
	var err error
	if k.file != "" {
		var st os.FileInfo
		if st, err = os.Stat(k.file); err == nil {
			k.fileMod, k.fileSize = st.ModTime(), st.Size()
			data, err = os.ReadFile(k.file)
		}
	} else {
		data, err = k.fetch(ctx)
	}
	var keys map[string]crypto.PublicKey
	if err == nil {
		keys, err = parseJWKS(data)
	}
	if err != nil {
		if k.lastError == nil || k.lastError.Error() != err.Error() {
			k.logger.Warn("JWKS not loaded; keeping the previous keys", "source", k.source(), "err", err)
		}
		k.lastError = err
		return
	}
	k.lastError = nil
	k.keys = keys
}

func (k *keySet) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", k.url, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", k.url, maxJWKSBytes)
	}
	return b, nil
}

// jwk is one JSON Web Key (RFC 7517/7518/8037), public parts only.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a key set. Keys of other types or uses are skipped;
// a malformed key of a supported type is an error naming it.
func parseJWKS(data []byte) (map[string]crypto.PublicKey, error) {
	if len(data) > maxJWKSBytes {
		return nil, errors.New("key set too large")
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`not a JWKS document: no "keys"`)
	}
	out := map[string]crypto.PublicKey{}
	for i, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		key, err := j.public()
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (kid %q): %w", i, j.Kid, err)
		}
		if key == nil {
			continue
		}
		out[j.Kid] = key
	}
	return out, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func (j *jwk) public() (crypto.PublicKey, error) {
	switch j.Kty {
	case "RSA":
		if j.Alg != "" && j.Alg != "RS256" {
			return nil, nil
		}
		n, err := b64(j.N)
		if err != nil || len(n) == 0 {
			return nil, errors.New("bad n")
		}
		e, err := b64(j.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad e")
		}
		k := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: want at least 2048", k.N.BitLen())
		}
		if k.E < 3 || k.E%2 == 0 {
			return nil, errors.New("bad e")
		}
		return k, nil
	case "EC":
		if j.Crv != "P-256" || (j.Alg != "" && j.Alg != "ES256") {
			return nil, nil
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad x or y")
		}
		raw := append(append([]byte{4}, x...), y...)
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, errors.New("point not on P-256")
		}
		return k, nil
	case "OKP":
		if j.Crv != "Ed25519" || (j.Alg != "" && j.Alg != "EdDSA") {
			return nil, nil
		}
		x, err := b64(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad x")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, nil
}

// maxVerified bounds the verified-signature cache of a key set.
const maxVerified = 4096

// verifiedToken is a token whose signature verified with key.
type verifiedToken struct {
	claims map[string]any
	kid    string
	alg    string
	key    crypto.PublicKey // the key it verified with
}

// verifiedCache remembers tokens whose signature verified, so a client
// sending the same token again costs a hash instead of a signature check
// (Envoy's jwt_cache_config). Claims (exp, nbf, iss, aud) are still
// checked on every request, and an entry is used only while its key is
// still the key set's key for its kid: a rotated-out key stops its
// tokens at once.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[32]byte]verifiedToken
}

func (c *verifiedCache) get(k [32]byte) (verifiedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *verifiedCache) put(k [32]byte, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[[32]byte]verifiedToken, 64) // drop all: bounded memory, refilled by use
	}
	c.m[k] = v
}
