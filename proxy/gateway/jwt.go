package gateway

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"time"
)

// Auth failure reasons: the reason label of
// meshscope_gateway_auth_failures_total and the error description of the
// 401 (a fixed set: bounded).
const (
	reasonMissing     = "missing_token"
	reasonMalformed   = "malformed"
	reasonAlgorithm   = "bad_algorithm"
	reasonUnknownKey  = "unknown_kid"
	reasonSignature   = "bad_signature"
	reasonExpired     = "expired"
	reasonNotYetValid = "not_yet_valid"
	reasonIssuer      = "wrong_issuer"
	reasonAudience    = "wrong_audience"
	reasonClaims      = "missing_claim"
	reasonKeysMissing = "jwks_unavailable"
)

var reasonText = map[string]string{
	reasonMissing:     "no bearer token",
	reasonMalformed:   "token is not a well-formed JWT",
	reasonAlgorithm:   "token algorithm not accepted (RS256, ES256, EdDSA)",
	reasonUnknownKey:  "token signed with an unknown key id",
	reasonSignature:   "token signature does not verify",
	reasonExpired:     "token expired",
	reasonNotYetValid: "token not yet valid",
	reasonIssuer:      "token issuer not accepted",
	reasonAudience:    "token audience not accepted",
	reasonClaims:      "token lacks a required claim",
	reasonKeysMissing: "signing keys unavailable",
}

// authError is a rejected token and its reason.
type authError struct{ reason string }

func (e *authError) Error() string { return reasonText[e.reason] }

func authErr(reason string) error { return &authError{reason} }

// maxTokenBytes bounds a token; larger ones are malformed.
const maxTokenBytes = 16 << 10

// token is a parsed, not yet verified, JWT.
type token struct {
	alg, kid string
	claims   map[string]any
	signed   string // header.payload
	sig      []byte
}

// parseToken splits and decodes a compact JWS. It checks syntax only.
func parseToken(s string) (*token, error) {
	if len(s) > maxTokenBytes {
		return nil, authErr(reasonMalformed)
	}
	h, rest, ok := strings.Cut(s, ".")
	p, sg, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(sg, ".") || h == "" || p == "" {
		return nil, authErr(reasonMalformed)
	}
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, authErr(reasonMalformed)
	}
	var hdr struct {
		Alg  string `json:"alg"`
		Kid  string `json:"kid"`
		Crit []any  `json:"crit"`
	}
	if err := strictJSON(hb, &hdr); err != nil || hdr.Crit != nil {
		return nil, authErr(reasonMalformed)
	}
	pb, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, authErr(reasonMalformed)
	}
	t := &token{alg: hdr.Alg, kid: hdr.Kid, signed: s[:len(h)+1+len(p)]}
	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	if err := dec.Decode(&t.claims); err != nil || t.claims == nil || dec.More() {
		return nil, authErr(reasonMalformed)
	}
	if t.sig, err = base64.RawURLEncoding.DecodeString(sg); err != nil {
		return nil, authErr(reasonMalformed)
	}
	return t, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// verifySignature checks t's signature with key. The algorithm must be
// RS256, ES256 or EdDSA and match the key's type (no "none", no HMAC: a
// public key is never used as an HMAC secret).
func verifySignature(t *token, key crypto.PublicKey) error {
	switch t.alg {
	case "RS256":
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return authErr(reasonAlgorithm)
		}
		d := sha256.Sum256([]byte(t.signed))
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], t.sig) != nil {
			return authErr(reasonSignature)
		}
	case "ES256":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return authErr(reasonAlgorithm)
		}
		if len(t.sig) != 64 {
			return authErr(reasonSignature)
		}
		d := sha256.Sum256([]byte(t.signed))
		r, s := new(big.Int).SetBytes(t.sig[:32]), new(big.Int).SetBytes(t.sig[32:])
		if !ecdsa.Verify(k, d[:], r, s) {
			return authErr(reasonSignature)
		}
	case "EdDSA":
		k, ok := key.(ed25519.PublicKey)
		if !ok {
			return authErr(reasonAlgorithm)
		}
		if !ed25519.Verify(k, []byte(t.signed), t.sig) {
			return authErr(reasonSignature)
		}
	default:
		return authErr(reasonAlgorithm)
	}
	return nil
}

func supportedAlg(alg string) bool { return alg == "RS256" || alg == "ES256" || alg == "EdDSA" }

// claimTime reads a NumericDate claim.
func claimTime(c map[string]any, name string) (time.Time, bool, error) {
	v, ok := c[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, true, authErr(reasonMalformed)
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, true, authErr(reasonMalformed)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true, nil
}

// checkClaims checks iss, aud, exp (required), nbf and the required claims.
func checkClaims(c map[string]any, issuer string, audiences, required []string, skew time.Duration, now time.Time) error {
	exp, ok, err := claimTime(c, "exp")
	if err != nil {
		return err
	}
	if !ok {
		return authErr(reasonClaims)
	}
	if !now.Before(exp.Add(skew)) {
		return authErr(reasonExpired)
	}
	nbf, ok, err := claimTime(c, "nbf")
	if err != nil {
		return err
	}
	if ok && now.Add(skew).Before(nbf) {
		return authErr(reasonNotYetValid)
	}
	if iss, _ := c["iss"].(string); iss != issuer {
		return authErr(reasonIssuer)
	}
	if !audienceOK(c["aud"], audiences) {
		return authErr(reasonAudience)
	}
	for _, name := range required {
		if _, ok := c[name]; !ok {
			return authErr(reasonClaims)
		}
	}
	return nil
}

func audienceOK(aud any, want []string) bool {
	has := func(s string) bool {
		for _, w := range want {
			if s == w {
				return true
			}
		}
		return false
	}
	switch a := aud.(type) {
	case string:
		return has(a)
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && has(s) {
				return true
			}
		}
	}
	return false
}

// claimHeader renders a claim as a header value: strings as they are,
// anything else as JSON; control characters are refused.
func claimHeader(v any) (string, bool) {
	var s string
	if str, ok := v.(string); ok {
		s = str
	} else {
		b, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		s = string(b)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return s, len(s) <= 4096
}
