package otlp

import (
	"fmt"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// metricsUTF8 checks that the strings of decoded OTLP metrics are UTF-8,
// as protobuf strings must be (pdata's decoder does not check): names,
// descriptions, units, scopes and attributes, naming the first bad one.
// The trace decoder (the official protobuf runtime) checks this itself.
func metricsUTF8(md pmetric.Metrics) error {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		at := fmt.Sprintf("resource_metrics[%d]", i)
		if err := attrsUTF8(at+".resource.attributes", rm.Resource().Attributes()); err != nil {
			return err
		}
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			at := fmt.Sprintf("%s.scope_metrics[%d]", at, j)
			if err := stringsUTF8(at+".scope", sm.Scope().Name(), sm.Scope().Version()); err != nil {
				return err
			}
			if err := attrsUTF8(at+".scope.attributes", sm.Scope().Attributes()); err != nil {
				return err
			}
			ms := sm.Metrics()
			for k := range ms.Len() {
				if err := metricUTF8(fmt.Sprintf("%s.metrics[%d]", at, k), ms.At(k)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func metricUTF8(at string, m pmetric.Metric) error {
	if err := stringsUTF8(at, m.Name(), m.Description(), m.Unit()); err != nil {
		return err
	}
	var attrs []pcommon.Map
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		for _, dp := range m.Gauge().DataPoints().All() {
			attrs = append(attrs, dp.Attributes())
		}
	case pmetric.MetricTypeSum:
		for _, dp := range m.Sum().DataPoints().All() {
			attrs = append(attrs, dp.Attributes())
		}
	case pmetric.MetricTypeHistogram:
		for _, dp := range m.Histogram().DataPoints().All() {
			attrs = append(attrs, dp.Attributes())
		}
	case pmetric.MetricTypeExponentialHistogram:
		for _, dp := range m.ExponentialHistogram().DataPoints().All() {
			attrs = append(attrs, dp.Attributes())
		}
	case pmetric.MetricTypeSummary:
		for _, dp := range m.Summary().DataPoints().All() {
			attrs = append(attrs, dp.Attributes())
		}
	}
	for i, a := range attrs {
		if err := attrsUTF8(fmt.Sprintf("%s.data_points[%d].attributes", at, i), a); err != nil {
			return err
		}
	}
	return nil
}

func stringsUTF8(at string, ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%s: invalid UTF-8 in %q", at, s)
		}
	}
	return nil
}

func attrsUTF8(at string, m pcommon.Map) error {
	for k, v := range m.All() {
		if err := valueUTF8(at+"."+k, k, v); err != nil {
			return err
		}
	}
	return nil
}

func valueUTF8(at, key string, v pcommon.Value) error {
	if !utf8.ValidString(key) {
		return fmt.Errorf("%s: invalid UTF-8 in key %q", at, key)
	}
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return stringsUTF8(at, v.Str())
	case pcommon.ValueTypeMap:
		return attrsUTF8(at, v.Map())
	case pcommon.ValueTypeSlice:
		for i, e := range v.Slice().All() {
			if err := valueUTF8(fmt.Sprintf("%s[%d]", at, i), "", e); err != nil {
				return err
			}
		}
	}
	return nil
}
