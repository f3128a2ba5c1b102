package inject

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Annotations read from the workload or its pod template (the template's
// wins).
const (
	// AnnotationInject is "disabled" to leave a workload alone ("enabled",
	// or absent, injects).
	AnnotationInject = "meshscope.io/inject"
	// AnnotationMode overrides --mode for one workload (observe|enforce).
	AnnotationMode = "meshscope.io/mode"
	// AnnotationInboundPort is the app port the proxy's inbound listener
	// forwards to; default the first TCP containerPort of the first
	// container. "none": no inbound listener (a pure client).
	AnnotationInboundPort = "meshscope.io/inbound-port"
	// AnnotationUpstreams lists the services the app calls
	// ("catalog,payments"): each gets an upstream listener whose endpoints
	// come from the control plane, and the forward proxy sends
	// http://catalog/ requests to them.
	AnnotationUpstreams = "meshscope.io/upstreams"
)

// Names and ports the sidecar takes in the pod.
const (
	ProxyName        = "meshscope-proxy"
	tokenVolume      = "meshscope-proxy-token"
	stateVolume      = "meshscope-proxy-state"
	tokenDir         = "/var/run/secrets/meshscope.io/proxy"
	stateDir         = "/var/run/meshscope-proxy"
	HTTPProxyPort    = 4140 // the app's HTTP_PROXY (loopback only)
	InboundPort      = 4143 // mesh → app, on the pod IP
	AdminPort        = 4191 // /ready /live /metrics, on the pod IP (kubelet probes, scraping)
	firstUpstream    = 4150 // upstream listeners, loopback, one per AnnotationUpstreams entry
	maxUpstreams     = 40
	proxyUID         = 65532
	serviceEnv       = "MESHSCOPE_SERVICE"
	versionEnv       = "MESHSCOPE_VERSION"
	podIPEnv         = "POD_IP"
	httpProxyValue   = "http://127.0.0.1:4140"
	noProxyValue     = "localhost,127.0.0.1,::1"
	labelName        = "app.kubernetes.io/name"
	labelApp         = "app"
	labelVersion     = "version"
	labelAppVersion  = "app.kubernetes.io/version"
	annotationFields = "metadata.annotations"
)

// proxyEnvNames are the variables set on every app container so its HTTP
// client sends plain-HTTP requests through the proxy.
var proxyEnvNames = []string{"HTTP_PROXY", "http_proxy"}

// noProxyEnvNames keep loopback traffic off the proxy (set when absent).
var noProxyEnvNames = []string{"NO_PROXY", "no_proxy"}

// serviceName is the proxy's name alphabet (proxy.Config.Validate).
var serviceName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

// podPath is where the pod template sits in the workload, for messages.
const podPath = "spec.template"

// annotation returns the template's value of key, else the workload's.
func annotation(meta *metav1.ObjectMeta, tmpl *corev1.PodTemplateSpec, key string) (value, field string, ok bool) {
	if v, ok := tmpl.Annotations[key]; ok {
		return v, podPath + "." + annotationFields + "[" + key + "]", true
	}
	if v, ok := meta.Annotations[key]; ok {
		return v, annotationFields + "[" + key + "]", true
	}
	return "", "", false
}

// disabled reports whether the workload opts out; a value other than
// enabled or disabled is an error.
func disabled(meta *metav1.ObjectMeta, tmpl *corev1.PodTemplateSpec) (bool, error) {
	v, field, ok := annotation(meta, tmpl, AnnotationInject)
	switch {
	case !ok || v == "enabled":
		return false, nil
	case v == "disabled":
		return true, nil
	}
	return false, fmt.Errorf("%s: %q: want enabled or disabled", field, v)
}

// injectPod adds (or replaces) the sidecar in tmpl.
func injectPod(meta *metav1.ObjectMeta, tmpl *corev1.PodTemplateSpec, o Options) error {
	spec := &tmpl.Spec
	if spec.HostNetwork {
		return fmt.Errorf("%s.spec.hostNetwork: true: the proxy's ports would be the node's; mesh this workload without hostNetwork or annotate %s: disabled", podPath, AnnotationInject)
	}
	removeSidecar(spec)
	if len(spec.Containers) == 0 {
		return fmt.Errorf("%s.spec.containers: no container to mesh", podPath)
	}

	mode := o.Mode
	if v, field, ok := annotation(meta, tmpl, AnnotationMode); ok {
		if err := checkMode(v); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		mode = v
	}
	env, err := identityEnv(tmpl)
	if err != nil {
		return err
	}
	appPort, err := inboundTarget(meta, tmpl)
	if err != nil {
		return err
	}
	upstreams, err := upstreamList(meta, tmpl)
	if err != nil {
		return err
	}
	if err := checkPorts(spec, len(upstreams)); err != nil {
		return err
	}
	for i := range spec.Containers {
		if err := setProxyEnv(&spec.Containers[i], i); err != nil {
			return err
		}
	}

	args := []string{"--mode=" + mode, "--admin=$(POD_IP):" + strconv.Itoa(AdminPort)}
	if appPort > 0 {
		args = append(args, fmt.Sprintf("--inbound=$(POD_IP):%d=127.0.0.1:%d", InboundPort, appPort))
	}
	args = append(args, "--http-proxy=127.0.0.1:"+strconv.Itoa(HTTPProxyPort))
	for i, svc := range upstreams {
		args = append(args, fmt.Sprintf("--upstream=127.0.0.1:%d=%s", firstUpstream+i, svc))
	}
	if o.ControlPlane != "" {
		args = append(args, "--control-plane="+o.ControlPlane, "--state-dir="+stateDir)
	}
	if o.Collector != "" {
		args = append(args, "--collector="+o.Collector)
	}
	mounts := []corev1.VolumeMount{{Name: stateVolume, MountPath: stateDir}}
	if o.TokenSecret != "" {
		args = append(args, "--token-file="+tokenDir+"/token")
		mounts = append(mounts, corev1.VolumeMount{Name: tokenVolume, MountPath: tokenDir, ReadOnly: true})
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: tokenVolume, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: o.TokenSecret, DefaultMode: ptr(int32(0o444))}}}) // readable without the app's fsGroup
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: stateVolume, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse("16Mi"))}}})

	ports := []corev1.ContainerPort{{Name: "ms-admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP}}
	if appPort > 0 {
		ports = append([]corev1.ContainerPort{{Name: "ms-inbound", ContainerPort: InboundPort, Protocol: corev1.ProtocolTCP}}, ports...)
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("ms-admin")}},
			PeriodSeconds:    period,
			FailureThreshold: failures,
		}
	}
	sidecar := corev1.Container{
		Name:  ProxyName,
		Image: o.Image,
		Args:  args,
		Env: append([]corev1.EnvVar{
			{Name: podIPEnv, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		}, env...),
		Ports: ports,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
		// A native sidecar (an init container that keeps running): it is
		// ready before the app starts, so the app's first requests find
		// HTTP_PROXY listening, and it stops after the app.
		RestartPolicy:  ptr(corev1.ContainerRestartPolicyAlways),
		StartupProbe:   probe("/ready", 1, 30),
		ReadinessProbe: probe("/ready", 5, 2),
		LivenessProbe:  probe("/live", 10, 3),
		VolumeMounts:   mounts,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(int64(proxyUID)),
			RunAsGroup:               ptr(int64(proxyUID)),
			RunAsNonRoot:             ptr(true),
			ReadOnlyRootFilesystem:   ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	spec.InitContainers = append([]corev1.Container{sidecar}, spec.InitContainers...)
	return nil
}

// removeSidecar drops an earlier injection's sidecar and volumes, so
// injecting again applies the current options and otherwise changes
// nothing.
func removeSidecar(spec *corev1.PodSpec) {
	isProxy := func(c corev1.Container) bool { return c.Name == ProxyName }
	spec.InitContainers = slices.DeleteFunc(spec.InitContainers, isProxy)
	spec.Containers = slices.DeleteFunc(spec.Containers, isProxy)
	spec.Volumes = slices.DeleteFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == tokenVolume || v.Name == stateVolume })
	if len(spec.InitContainers) == 0 {
		spec.InitContainers = nil
	}
	if len(spec.Volumes) == 0 {
		spec.Volumes = nil
	}
}

// identityEnv maps the pod's name and version labels to the proxy's
// MESHSCOPE_SERVICE and MESHSCOPE_VERSION through the downward API, so a
// relabelled pod (a new version) needs no new injection.
func identityEnv(tmpl *corev1.PodTemplateSpec) ([]corev1.EnvVar, error) {
	fromLabel := func(env, label string) corev1.EnvVar {
		return corev1.EnvVar{Name: env, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['" + label + "']"}}}
	}
	labels := tmpl.Labels
	var env []corev1.EnvVar
	switch name := firstLabel(labels, labelName, labelApp); {
	case name == "":
		return nil, fmt.Errorf("%s.metadata.labels: no %s or %s label to name the service by", podPath, labelName, labelApp)
	case !serviceName.MatchString(labels[name]):
		return nil, fmt.Errorf("%s.metadata.labels[%s]: %q is not a service name (1-63 of A-Za-z0-9._-)", podPath, name, labels[name])
	default:
		env = append(env, fromLabel(serviceEnv, name))
	}
	if v := firstLabel(labels, labelVersion, labelAppVersion); v != "" {
		if !serviceName.MatchString(labels[v]) {
			return nil, fmt.Errorf("%s.metadata.labels[%s]: %q is not a version (1-63 of A-Za-z0-9._-)", podPath, v, labels[v])
		}
		env = append(env, fromLabel(versionEnv, v))
	}
	return env, nil
}

func firstLabel(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if _, ok := labels[k]; ok {
			return k
		}
	}
	return ""
}

// inboundTarget is the app port the inbound listener forwards to; 0 =
// none.
func inboundTarget(meta *metav1.ObjectMeta, tmpl *corev1.PodTemplateSpec) (int32, error) {
	if v, field, ok := annotation(meta, tmpl, AnnotationInboundPort); ok {
		if v == "none" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("%s: %q: want a port number (1-65535) or none", field, v)
		}
		return int32(n), nil
	}
	for _, p := range tmpl.Spec.Containers[0].Ports {
		if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
			return p.ContainerPort, nil
		}
	}
	return 0, nil
}

func upstreamList(meta *metav1.ObjectMeta, tmpl *corev1.PodTemplateSpec) ([]string, error) {
	v, field, ok := annotation(meta, tmpl, AnnotationUpstreams)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if !serviceName.MatchString(s) {
			return nil, fmt.Errorf("%s: %q is not a service name (1-63 of A-Za-z0-9._-)", field, s)
		}
		if slices.Contains(out, s) {
			return nil, fmt.Errorf("%s: %q is listed twice", field, s)
		}
		out = append(out, s)
	}
	if len(out) > maxUpstreams {
		return nil, fmt.Errorf("%s: %d services, at most %d", field, len(out), maxUpstreams)
	}
	return out, nil
}

// checkPorts refuses a pod whose containers already use a port the proxy
// binds (every container of a pod shares its network namespace).
func checkPorts(spec *corev1.PodSpec, upstreams int) error {
	taken := map[int32]string{HTTPProxyPort: "--http-proxy", InboundPort: "--inbound", AdminPort: "--admin"}
	for i := range upstreams {
		taken[int32(firstUpstream+i)] = "--upstream"
	}
	for _, list := range []struct {
		field string
		cs    []corev1.Container
	}{{"containers", spec.Containers}, {"initContainers", spec.InitContainers}} {
		for i, c := range list.cs {
			for j, p := range c.Ports {
				if flag, ok := taken[p.ContainerPort]; ok {
					return fmt.Errorf("%s.spec.%s[%d].ports[%d].containerPort: %d is the meshscope-proxy's %s port", podPath, list.field, i, j, p.ContainerPort, flag)
				}
			}
		}
	}
	return nil
}

// setProxyEnv points the container's HTTP client at the forward proxy. A
// different HTTP_PROXY already set is an error: silently replacing it
// would break the app's own proxy.
func setProxyEnv(c *corev1.Container, i int) error {
	for _, name := range proxyEnvNames {
		k := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		switch {
		case k < 0:
			c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: httpProxyValue})
		case c.Env[k].Value != httpProxyValue || c.Env[k].ValueFrom != nil:
			return fmt.Errorf("%s.spec.containers[%d].env[%d] (%s): already set to %q; the sidecar needs it to be %s: remove it, or annotate %s: disabled",
				podPath, i, k, name, c.Env[k].Value, httpProxyValue, AnnotationInject)
		}
	}
	// The app's own NO_PROXY (either spelling) is kept and copied to the
	// other spelling, so tools that read only one agree.
	noProxy := noProxyValue
	for _, name := range noProxyEnvNames {
		if k := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name }); k >= 0 && c.Env[k].ValueFrom == nil {
			noProxy = c.Env[k].Value
			break
		}
	}
	for _, name := range noProxyEnvNames {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name }) {
			c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: noProxy})
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
