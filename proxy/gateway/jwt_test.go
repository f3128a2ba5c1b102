package gateway

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func signToken(t testing.TB, alg, kid string, key crypto.Signer, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid})
	p, _ := json.Marshal(claims)
	in := enc(h) + "." + enc(p)
	d := sha256.Sum256([]byte(in))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		sig, _ = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	case *ecdsa.PrivateKey:
		r, s, _ := ecdsa.Sign(rand.Reader, k, d[:])
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(in))
	}
	return in + "." + enc(sig)
}

func jwkOf(kid string, pub crypto.PublicKey) map[string]string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, _ := k.Bytes()
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": enc(k)}
	}
	return nil
}

func TestVerify(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, dk, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set, _ := json.Marshal(map[string]any{"keys": []any{jwkOf("r", rk.Public()), jwkOf("e", ek.Public()), jwkOf("d", dk.Public())}})
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, set, 0o600); err != nil {
		t.Fatal(err)
	}
	ks := newKeySet(file, "", time.Minute, http.DefaultClient, slog.New(slog.DiscardHandler))
	now := time.Unix(1_800_000_000, 0)
	good := func() map[string]any {
		return map[string]any{"iss": "iss", "aud": []string{"x", "shop"}, "sub": "alice", "exp": now.Unix() + 60}
	}
	mod := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	none := enc([]byte(`{"alg":"none","kid":"e"}`)) + "." + enc([]byte(`{"iss":"iss"}`)) + "."
	for _, tc := range []struct {
		name  string
		token string
		want  string // reason; "" = valid
	}{
		{"RS256", signToken(t, "RS256", "r", rk, good()), ""},
		{"ES256", signToken(t, "ES256", "e", ek, good()), ""},
		{"EdDSA", signToken(t, "EdDSA", "d", dk, good()), ""},
		{"exp within skew", signToken(t, "ES256", "e", ek, mod("exp", now.Unix()-10)), ""},
		{"expired", signToken(t, "ES256", "e", ek, mod("exp", now.Unix()-31)), reasonExpired},
		{"no exp", signToken(t, "ES256", "e", ek, mod("exp", nil)), reasonClaims},
		{"nbf future", signToken(t, "ES256", "e", ek, mod("nbf", now.Unix()+120)), reasonNotYetValid},
		{"aud", signToken(t, "ES256", "e", ek, mod("aud", "other")), reasonAudience},
		{"iss", signToken(t, "ES256", "e", ek, mod("iss", "x")), reasonIssuer},
		{"sub required", signToken(t, "ES256", "e", ek, mod("sub", nil)), reasonClaims},
		{"wrong key", signToken(t, "ES256", "e", other, good()), reasonSignature},
		{"kid of another type", signToken(t, "ES256", "r", ek, good()), reasonAlgorithm},
		{"unknown kid", signToken(t, "ES256", "zz", ek, good()), reasonUnknownKey},
		{"alg none", none, reasonAlgorithm},
		{"not a JWT", "abc", reasonMalformed},
		{"exp string", signToken(t, "ES256", "e", ek, mod("exp", "soon")), reasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verify(ks, tc.token, now)
			var ae *authError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (!errors.As(err, &ae) || ae.reason != tc.want):
				t.Fatalf("want %s, got %v", tc.want, err)
			}
		})
	}
}

// verify runs the checks authenticate runs.
func verify(ks *keySet, raw string, now time.Time) error {
	tok, err := parseToken(raw)
	if err != nil {
		return err
	}
	if !supportedAlg(tok.alg) {
		return authErr(reasonAlgorithm)
	}
	key, err := ks.key(context.Background(), tok.kid, now)
	if err != nil {
		return err
	}
	if err := verifySignature(tok, key); err != nil {
		return err
	}
	return checkClaims(tok.claims, "iss", []string{"shop"}, []string{"sub"}, 30*time.Second, now)
}

func TestParseJWKSErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{}`, `no "keys"`},
		{`[1]`, "not a JWKS"},
		{`{"keys":[{"kty":"EC","kid":"a","crv":"P-256","x":"AA","y":"AA"}]}`, `keys[0] (kid "a"): bad x or y`},
		{`{"keys":[{"kty":"RSA","kid":"s","n":"AQAB","e":"AQAB"}]}`, "at least 2048"},
	} {
		if _, err := parseJWKS([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
	keys, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-384"}]}`))
	if err != nil || len(keys) != 0 {
		t.Fatalf("symmetric and unsupported keys must be skipped: %v %v", keys, err)
	}
}

func FuzzParseToken(f *testing.F) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(signToken(f, "ES256", "e", ek, map[string]any{"exp": 1, "aud": []any{"a", 1}}))
	f.Add(enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{}`)) + ".")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseToken(s)
		if err != nil {
			var ae *authError
			if !errors.As(err, &ae) || ae.reason != reasonMalformed {
				t.Fatalf("parse error %v is not a malformed-token error", err)
			}
			return
		}
		if !strings.HasPrefix(s, tok.signed) {
			t.Fatalf("signed part %q is not a prefix of the token", tok.signed)
		}
		// Verification and claim checks never panic on parsed input.
		_ = verifySignature(tok, &ek.PublicKey)
		_ = checkClaims(tok.claims, "i", []string{"a"}, []string{"sub"}, time.Second, time.Unix(0, 0))
		for _, v := range tok.claims {
			claimHeader(v)
		}
	})
}
