package proxy

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/meshscope/meshscope/proxy/policy"
)

// withPolicyState attaches the policy state of a request the policy
// engine (proxy/policy/chain) will route; the engine is the transport.
func withPolicyState(r *http.Request, p *Proxy, k *requestKey, inbound bool) *http.Request {
	st := policy.NewRequest(k.dstService, p.policyRec)
	st.Inbound = inbound
	return r.WithContext(policy.NewContext(r.Context(), st))
}

// policyFinish puts what the policies did into the request's labels and
// span: the backend version the request went to, the attempts, and one
// span event per policy decision.
func policyFinish(r *http.Request, p *Proxy, k *requestKey, span *hopSpan) {
	st := policy.FromContext(r.Context())
	if st == nil || st.Inbound {
		return
	}
	if _, v := st.Endpoint(); v != "" {
		k.dstVersion = v
	}
	attempts := st.Attempts()
	p.policyRec.Retried(k.dstService, k.dstVersion, attempts-1)
	if span == nil {
		return
	}
	span.setStr(attrDstVersion, k.dstVersion)
	if attempts > 0 {
		span.add(attribute.Int("mesh.attempts", attempts))
	}
	for _, d := range st.Decisions() {
		span.events = append(span.events, sdktrace.Event{Name: "policy.decision", Time: d.At, Attributes: []attribute.KeyValue{
			attribute.String("mesh.policy.kind", d.Kind),
			attribute.String("mesh.policy.name", d.Name),
			attribute.String("mesh.policy.decision", d.Decision),
			attribute.String("mesh.policy.enforced", strconv.FormatBool(d.Enforce)),
		}})
	}
}
