// Package kubernetes_test decodes kura's Kubernetes manifests with the
// Kubernetes API types, strictly, and checks the invariants they must keep.
package kubernetes_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// decoder decodes core and apps objects, refusing unknown and duplicate
// fields.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	s := runtime.NewScheme()
	if err := errors.Join(corev1.AddToScheme(s), appsv1.AddToScheme(s)); err != nil {
		t.Fatal(err)
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}

// decodeAll decodes every document of a YAML stream.
func decodeAll(dec runtime.Decoder, data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
}

func manifests(t *testing.T) map[string][]runtime.Object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	dec := decoder(t)
	out := map[string][]runtime.Object{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(dec, data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = objs
	}
	return out
}

func TestStrictDecoding(t *testing.T) {
	dec := decoder(t)
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n",
		"duplicate field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"unknown kind":    "apiVersion: v1\nkind: Sekret\nmetadata: {name: x}\n",
		"wrong type":      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: three\n",
	} {
		if _, err := decodeAll(dec, []byte(doc)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// kuraConfig is the part of kura-config's kura.yaml the pods depend on.
type kuraConfig struct {
	Data      string `yaml:"data"`
	TLSCert   string `yaml:"tls-cert"`
	TLSKey    string `yaml:"tls-key"`
	Key       string `yaml:"key"`
	KEKFile   string `yaml:"kek-file"`
	AdminKeys string `yaml:"admin-keys"`
	S3Access  string `yaml:"s3-access-key-file"`
	S3Secret  string `yaml:"s3-secret-key-file"`
}

func TestManifests(t *testing.T) {
	all := manifests(t)
	var (
		cfg      kuraConfig
		cfgText  string
		haveCfg  bool
		pods     = map[string]corev1.PodTemplateSpec{}
		replicas = map[string]int32{}
	)
	for file, objs := range all {
		for _, obj := range objs {
			switch o := obj.(type) {
			case *corev1.Secret:
				t.Errorf("%s: Secret %s: secrets are created with kubectl, never kept in manifests", file, o.Name)
			case *corev1.ConfigMap:
				for k, v := range o.Data {
					if strings.Contains(v, "PRIVATE KEY") || strings.Contains(v, "postgres://") {
						t.Errorf("%s: ConfigMap %s key %s holds a secret or a database URL", file, o.Name, k)
					}
				}
				if o.Name == "kura-config" {
					if err := yaml.Unmarshal([]byte(o.Data["kura.yaml"]), &cfg); err != nil {
						t.Fatalf("%s: kura.yaml: %v", file, err)
					}
					cfgText, haveCfg = o.Data["kura.yaml"], true
				}
			case *appsv1.Deployment:
				pods[o.Name], replicas[o.Name] = o.Spec.Template, *o.Spec.Replicas
			case *appsv1.StatefulSet:
				pods[o.Name], replicas[o.Name] = o.Spec.Template, *o.Spec.Replicas
				if o.Name == "kura-log" && *o.Spec.Replicas != 1 {
					t.Errorf("%s: kura-log has %d replicas; one process writes a log directory", file, *o.Spec.Replicas)
				}
			case *corev1.Service:
			default:
				t.Errorf("%s: unexpected %T", file, obj)
			}
		}
	}
	if !haveCfg {
		t.Fatal("no kura-config ConfigMap")
	}
	if replicas["kura"] < 2 {
		t.Errorf("the kura Deployment has %d replicas, want several", replicas["kura"])
	}
	workers := 0
	var serveArgs [][]string
	for name, pod := range pods {
		checkNonRoot(t, name, pod.Spec)
		for _, c := range pod.Spec.Containers {
			switch {
			case len(c.Args) > 0 && c.Args[0] == "serve":
				checkServe(t, name, pod.Spec, c, cfg)
				serveArgs = append(serveArgs, c.Args)
			case len(c.Args) > 1 && c.Args[0] == "worker" && c.Args[1] == "serve":
				workers++
				checkWorker(t, name, pod.Spec)
			default:
				t.Errorf("%s: container %s runs %q, neither kura serve nor kura worker serve", name, c.Name, c.Args)
			}
			checkEnv(t, name, c)
		}
	}
	if workers == 0 {
		t.Error("no kura worker serve pods")
	}
	checkPrintConfig(t, cfgText, serveArgs)
}

// checkPrintConfig runs kura serve --print-config with each serve
// container's arguments and kura-config's kura.yaml, so that a setting kura
// does not know (which it refuses) fails here, not at deploy time.
func checkPrintConfig(t *testing.T, cfgText string, serveArgs [][]string) {
	t.Helper()
	if testing.Short() {
		t.Log("-short: not building kura to check kura.yaml")
		return
	}
	dir := t.TempDir()
	bin, cfgFile := filepath.Join(dir, "kura"), filepath.Join(dir, "kura.yaml")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/kura-cc/kura/cmd/kura").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range serveArgs {
		args = slices.Clone(args)
		if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
			args[i+1] = cfgFile
		}
		cmd := exec.CommandContext(t.Context(), bin, append(args, "--print-config")...)
		cmd.Env = []string{"HOME=" + dir, "KURA_STORE=postgres://kura@db.invalid/kura"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("kura %s --print-config: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// checkNonRoot: every container runs as a non-root user, without privilege
// escalation, capabilities or a writable root filesystem.
func checkNonRoot(t *testing.T, name string, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: the pod does not run as a non-root user", name)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: the pod mounts a service account token it does not use", name)
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s/%s: no securityContext", name, c.Name)
		case sc.RunAsUser != nil && *sc.RunAsUser == 0, sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
			t.Errorf("%s/%s: may run as root", name, c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s/%s: allows privilege escalation", name, c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s/%s: writable root filesystem", name, c.Name)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s/%s: privileged", name, c.Name)
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s/%s: does not drop every capability", name, c.Name)
		}
	}
}

// checkServe: probes on /readyz and /healthz over HTTPS, key files only
// from a memory-backed volume filled with 0400 copies, never a Secret
// volume (Kubernetes makes those group-readable or root-owned, which kura
// refuses or cannot read).
func checkServe(t *testing.T, name string, spec corev1.PodSpec, c corev1.Container, cfg kuraConfig) {
	t.Helper()
	probe := func(kind string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s/%s: %s probe is not GET %s over HTTPS", name, c.Name, kind, path)
			return
		}
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
			return cp.Name == p.HTTPGet.Port.StrVal || cp.ContainerPort == p.HTTPGet.Port.IntVal
		}) {
			t.Errorf("%s/%s: %s probe's port %s is not the container's", name, c.Name, kind, p.HTTPGet.Port.String())
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")

	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	mountOf := func(path string) (corev1.VolumeMount, bool) {
		for _, m := range c.VolumeMounts {
			if path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/") {
				return m, true
			}
		}
		return corev1.VolumeMount{}, false
	}
	secrets := []string{cfg.TLSKey, cfg.Key, cfg.KEKFile, cfg.S3Access, cfg.S3Secret}
	if i := slices.Index(c.Args, "--log-key"); i >= 0 && i+1 < len(c.Args) {
		secrets = append(secrets, c.Args[i+1])
	}
	for _, f := range secrets {
		if f == "" {
			continue
		}
		m, ok := mountOf(f)
		v := volumes[m.Name]
		if !ok || v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory || !m.ReadOnly {
			t.Errorf("%s/%s: key file %s is not on a read-only mount of a memory-backed emptyDir", name, c.Name, f)
		}
		if !initFills(spec, m.Name, filepath.Base(f)) {
			t.Errorf("%s/%s: no init container copies %s into volume %s at 0400", name, c.Name, filepath.Base(f), m.Name)
		}
	}
	for _, f := range []string{cfg.TLSCert, cfg.AdminKeys, cfg.Data} {
		if _, ok := mountOf(f); !ok {
			t.Errorf("%s/%s: %s is on no volume", name, c.Name, f)
		}
	}
	for _, m := range c.VolumeMounts {
		if v := volumes[m.Name]; v.Secret != nil && v.Secret.SecretName != "" && !onlyCertificates(v.Secret) {
			t.Errorf("%s/%s: mounts Secret %s directly", name, c.Name, v.Secret.SecretName)
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil && !onlyCertificates(v.Secret) && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400) {
			t.Errorf("%s: Secret volume %s is not mounted 0400", name, v.Name)
		}
	}
}

// onlyCertificates reports whether a Secret volume projects only a
// certificate (public), as the tls-cert volume does.
func onlyCertificates(s *corev1.SecretVolumeSource) bool {
	return len(s.Items) > 0 && !slices.ContainsFunc(s.Items, func(k corev1.KeyToPath) bool { return !strings.HasSuffix(k.Path, ".crt") })
}

// initFills reports whether an init container, mounting the volume named
// vol, copies a file named file into it and makes the copies 0400: the
// file is a key of a Secret the init container mounts, or named in its
// command.
func initFills(spec corev1.PodSpec, vol, file string) bool {
	for _, ic := range spec.InitContainers {
		cmd := strings.Join(ic.Command, " ")
		if !strings.Contains(cmd, "chmod 0400") {
			continue
		}
		target := ""
		for _, m := range ic.VolumeMounts {
			if m.Name == vol {
				target = m.MountPath
			}
		}
		if target == "" || !strings.Contains(cmd, target) {
			continue
		}
		for _, m := range ic.VolumeMounts {
			if strings.Contains(cmd, m.MountPath+"/"+file) || strings.Contains(cmd, m.MountPath+"/*") {
				return true
			}
		}
	}
	return false
}

// checkWorker: a Confidential Containers runtime class, and nothing secret
// handed in by the host.
func checkWorker(t *testing.T, name string, spec corev1.PodSpec) {
	t.Helper()
	if rc := spec.RuntimeClassName; rc == nil || (*rc != "kata-qemu-snp" && *rc != "kata-qemu-tdx") {
		t.Errorf("%s: a worker outside a Confidential Containers runtime class (kata-qemu-snp, kata-qemu-tdx)", name)
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil || v.Projected != nil {
			t.Errorf("%s: worker mounts %s: a worker's secrets come only from key brokers", name, v.Name)
		}
	}
	for _, c := range spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				t.Errorf("%s/%s: worker takes %s from a Secret: a worker's secrets come only from key brokers", name, c.Name, e.Name)
			}
		}
	}
}

// checkEnv: what might be secret (the store URL, passwords, keys, tokens)
// comes from a Secret, never inline.
func checkEnv(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		n := strings.ToUpper(e.Name)
		risky := n == "KURA_STORE" || strings.Contains(n, "PASSWORD") || strings.Contains(n, "SECRET") || strings.Contains(n, "TOKEN") || strings.HasSuffix(n, "_KEY")
		if risky && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("%s/%s: %s is inline, not from a Secret", name, c.Name, e.Name)
		}
		if strings.Contains(e.Value, "://") && strings.Contains(e.Value, "@") {
			t.Errorf("%s/%s: %s holds a URL with credentials", name, c.Name, e.Name)
		}
	}
}
