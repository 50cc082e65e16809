// The Kubernetes manifests under k8s/, checked against the configuration they mount.

package deploy_test

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type k8sMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
}

// keyRef names one key of a Secret.
type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a container port's name
	} `yaml:"httpGet"`
	Exec *struct{} `yaml:"exec"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *keyRef `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
			Exec *struct{} `yaml:"exec"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
}

// port resolves a probe's or Service's target port: a number, or a port's name.
func (c *container) port(p any) (int, bool) {
	switch v := p.(type) {
	case int:
		return v, true
	case string:
		for _, cp := range c.Ports {
			if cp.Name == v {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

type deploymentSpec struct {
	Spec struct {
		Replicas int           `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					RunAsUser    *int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name  string `yaml:"name"`
						Items []struct {
							Key  string `yaml:"key"`
							Path string `yaml:"path"`
						} `yaml:"items"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type serviceSpec struct {
	Spec struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

// k8sObject is one document of a manifest under k8s/.
type k8sObject struct {
	k8sMeta
	file string
	node *yaml.Node
}

func (o k8sObject) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s: %s %s: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
}

// k8sObjects reads every manifest under k8s/, keyed "Kind/name".
func k8sObjects(t *testing.T) map[string]k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no k8s/*.yaml (%v)", err)
	}
	objs := map[string]k8sObject{}
	for _, f := range files {
		docs, err := yamlDocs(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			o := k8sObject{file: f, node: d}
			o.decode(t, &o.k8sMeta)
			key := o.Kind + "/" + o.Metadata.Name
			if _, dup := objs[key]; dup {
				t.Errorf("%s: %s defined twice", f, key)
			}
			objs[key] = o
		}
	}
	return objs
}

func get(t *testing.T, objs map[string]k8sObject, key string) k8sObject {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		t.Fatalf("k8s/: no %s", key)
	}
	return o
}

// selects reports whether a selector picks the pods labelled labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetes(t *testing.T) {
	objs := k8sObjects(t)
	img, _ := parseDockerfile(t)

	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	cmObj := get(t, objs, "ConfigMap/relay-config")
	cmObj.decode(t, &cm)
	cfg, names := parseRelayConfig(t, "k8s/configmap.yaml relay.yaml", []byte(cm.Data["relay.yaml"]))
	ingestPort, adminPort := listenPort(t, cfg.Server.Listen), listenPort(t, cfg.Admin.Listen)
	if isLoopback(cfg.Admin.Listen) {
		t.Errorf("configmap relay.yaml: admin.listen %q is loopback: the kubelet's probes and Prometheus could not reach it", cfg.Admin.Listen)
	}
	if !slices.Equal(img.expose, []int{ingestPort, adminPort}) {
		t.Errorf("configmap relay.yaml listens on %d and %d; the Dockerfile EXPOSEs %v", ingestPort, adminPort, img.expose)
	}

	var dep deploymentSpec
	depObj := get(t, objs, "Deployment/relay")
	depObj.decode(t, &dep)
	pod := dep.Spec.Template.Spec
	podLabels := dep.Spec.Template.Metadata.Labels
	if dep.Spec.Replicas < 2 {
		t.Errorf("Deployment replicas %d, want at least 2", dep.Spec.Replicas)
	}
	if !selects(dep.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("Deployment selector %v does not select its pods %v", dep.Spec.Selector.MatchLabels, podLabels)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(pod.Containers))
	}
	c := &pod.Containers[0]

	t.Run("ports and probes", func(t *testing.T) {
		var ports []int
		for _, p := range c.Ports {
			ports = append(ports, p.ContainerPort)
		}
		slices.Sort(ports)
		if !slices.Equal(ports, []int{ingestPort, adminPort}) {
			t.Errorf("containerPorts %v, want server.listen %d and admin.listen %d", ports, ingestPort, adminPort)
		}
		for _, pr := range []struct {
			name  string
			probe *probe
			paths []string
		}{
			{"readinessProbe", c.ReadinessProbe, []string{"/readyz"}},
			{"livenessProbe", c.LivenessProbe, []string{"/healthz"}},
			{"startupProbe", c.StartupProbe, []string{"/healthz", "/readyz"}},
		} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				t.Errorf("%s: want an httpGet probe", pr.name)
				continue
			}
			if !slices.Contains(pr.paths, pr.probe.HTTPGet.Path) {
				t.Errorf("%s path %q, want %q", pr.name, pr.probe.HTTPGet.Path, pr.paths)
			}
			if p, ok := c.port(pr.probe.HTTPGet.Port); !ok || p != adminPort {
				t.Errorf("%s port %v (%d), want the admin port %d", pr.name, pr.probe.HTTPGet.Port, p, adminPort)
			}
		}
		if port := dep.Spec.Template.Metadata.Annotations["prometheus.io/port"]; port != "" && port != strconv.Itoa(adminPort) {
			t.Errorf("prometheus.io/port annotation %q, want the admin port %d", port, adminPort)
		}
	})

	t.Run("security", func(t *testing.T) {
		sc := pod.SecurityContext
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Error("pod securityContext: want runAsNonRoot: true and a non-zero runAsUser")
		} else if uid, _, _ := strings.Cut(img.user, ":"); strconv.Itoa(*sc.RunAsUser) != uid {
			t.Errorf("pod runAsUser %d, the image's USER is %s", *sc.RunAsUser, img.user)
		}
		csc := c.SecurityContext
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			t.Error("container securityContext: want readOnlyRootFilesystem: true")
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Error("container securityContext: want allowPrivilegeEscalation: false")
		}
		if !slices.Contains(csc.Capabilities.Drop, "ALL") {
			t.Error("container securityContext: want capabilities.drop [ALL]")
		}
		for _, k := range []string{"cpu", "memory"} {
			if c.Resources.Requests[k] == "" {
				t.Errorf("resources.requests.%s is unset (the HPA needs the CPU request)", k)
			}
		}
		if c.Resources.Limits["memory"] == "" {
			t.Error("resources.limits.memory is unset")
		}
	})

	t.Run("config and secrets", func(t *testing.T) {
		// No command or args: the image's ENTRYPOINT already says serve --config; args
		// would be appended to it.
		if len(c.Command) > 0 || len(c.Args) > 0 {
			t.Errorf("container command %q args %q: leave both out, the image's ENTRYPOINT runs the relay", c.Command, c.Args)
		}
		mounted := false
		for _, v := range pod.Volumes {
			if v.ConfigMap == nil || v.ConfigMap.Name != cmObj.Metadata.Name {
				continue
			}
			for _, m := range c.VolumeMounts {
				for _, it := range v.ConfigMap.Items {
					if m.Name == v.Name && it.Key == "relay.yaml" && filepath.Join(m.MountPath, it.Path) == configPath {
						mounted = true
						if !m.ReadOnly {
							t.Error("the config volume should be mounted readOnly")
						}
					}
				}
			}
		}
		if !mounted {
			t.Errorf("the ConfigMap's relay.yaml is not mounted at %s", configPath)
		}

		var secret struct {
			k8sMeta    `yaml:",inline"`
			StringData map[string]string `yaml:"stringData"`
		}
		decodeYAML(t, filepath.Join("k8s", "secret.example.yaml"), &secret)
		env := map[string]bool{}
		for _, e := range c.Env {
			var ref *keyRef
			if e.ValueFrom != nil {
				ref = e.ValueFrom.SecretKeyRef
			}
			if ref == nil {
				continue
			}
			env[e.Name] = true
			if ref.Name != secret.Metadata.Name {
				t.Errorf("env %s: secretKeyRef %q, want the Secret %q", e.Name, ref.Name, secret.Metadata.Name)
			}
			if v, ok := secret.StringData[ref.Key]; !ok {
				t.Errorf("env %s: key %q is not in secret.example.yaml", e.Name, ref.Key)
			} else if !strings.Contains(v, "CHANGE-ME") {
				t.Errorf("secret.example.yaml: %s = %q must be an obvious placeholder (CHANGE-ME)", ref.Key, v)
			}
		}
		for _, n := range names {
			if !env[n] {
				t.Errorf("configmap relay.yaml needs ${%s}, which the container does not set from a secretKeyRef", n)
			}
		}
	})

	t.Run("shutdown", func(t *testing.T) {
		pre := c.Lifecycle.PreStop
		sleep := 0
		switch {
		case pre == nil || pre.Sleep == nil:
			t.Error("want a preStop sleep so load balancers stop sending before SIGTERM")
		case pre.Exec != nil:
			t.Error("preStop exec cannot work: the distroless image has no shell or sleep")
		default:
			sleep = pre.Sleep.Seconds
		}
		need := time.Duration(sleep)*time.Second + stopBudget(t, cfg)
		if got := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; got <= need {
			t.Errorf("terminationGracePeriodSeconds %v, want more than preStop %ds + drain %v + provider timeout %v",
				got, sleep, shutdownGrace(t), maxProviderTimeout(cfg))
		}
	})

	t.Run("services", func(t *testing.T) {
		var ingestSvc, adminSvc bool
		for key, o := range objs {
			if o.Kind != "Service" {
				continue
			}
			var s serviceSpec
			o.decode(t, &s)
			if !selects(s.Spec.Selector, podLabels) {
				t.Errorf("%s selects %v, not the relay's pods", key, s.Spec.Selector)
			}
			for _, p := range s.Spec.Ports {
				target, ok := c.port(p.TargetPort)
				switch {
				case !ok:
					t.Errorf("%s port %s: targetPort %v is not a container port", key, p.Name, p.TargetPort)
				case target == ingestPort && p.Port == 80:
					ingestSvc = true
				case target == adminPort:
					adminSvc = true
					if s.Spec.Type != "" && s.Spec.Type != "ClusterIP" {
						t.Errorf("%s exposes the admin port with type %s; keep it ClusterIP", key, s.Spec.Type)
					}
					for _, q := range s.Spec.Ports {
						if t2, _ := c.port(q.TargetPort); t2 == ingestPort {
							t.Errorf("%s mixes the ingest and admin ports: a public ingest Service would expose admin", key)
						}
					}
				}
			}
		}
		if !ingestSvc {
			t.Errorf("no Service maps port 80 to the ingest port %d", ingestPort)
		}
		if !adminSvc && dep.Spec.Template.Metadata.Annotations["prometheus.io/scrape"] != "true" {
			t.Error("Prometheus cannot find the admin port: no admin Service and no prometheus.io annotations")
		}
	})

	t.Run("pdb hpa networkpolicy", func(t *testing.T) {
		var pdb struct {
			Spec struct {
				MinAvailable any           `yaml:"minAvailable"`
				Selector     labelSelector `yaml:"selector"`
			} `yaml:"spec"`
		}
		get(t, objs, "PodDisruptionBudget/relay").decode(t, &pdb)
		if pdb.Spec.MinAvailable != 1 {
			t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
		}
		if !selects(pdb.Spec.Selector.MatchLabels, podLabels) {
			t.Errorf("PodDisruptionBudget selects %v, not the relay's pods", pdb.Spec.Selector.MatchLabels)
		}

		hpaObj := get(t, objs, "HorizontalPodAutoscaler/relay")
		var hpa struct {
			Spec struct {
				ScaleTargetRef struct {
					Kind string `yaml:"kind"`
					Name string `yaml:"name"`
				} `yaml:"scaleTargetRef"`
				MinReplicas int `yaml:"minReplicas"`
				MaxReplicas int `yaml:"maxReplicas"`
				Metrics     []struct {
					Type     string `yaml:"type"`
					Resource struct {
						Name string `yaml:"name"`
					} `yaml:"resource"`
				} `yaml:"metrics"`
			} `yaml:"spec"`
		}
		hpaObj.decode(t, &hpa)
		if hpaObj.APIVersion != "autoscaling/v2" {
			t.Errorf("HPA apiVersion %q, want autoscaling/v2", hpaObj.APIVersion)
		}
		if r := hpa.Spec.ScaleTargetRef; r.Kind != "Deployment" || r.Name != depObj.Metadata.Name {
			t.Errorf("HPA scales %s/%s, want Deployment/%s", r.Kind, r.Name, depObj.Metadata.Name)
		}
		if hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas < hpa.Spec.MinReplicas {
			t.Errorf("HPA replicas %d..%d, want at least 2", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
		if len(hpa.Spec.Metrics) == 0 || hpa.Spec.Metrics[0].Resource.Name != "cpu" {
			t.Errorf("HPA metrics %+v, want CPU", hpa.Spec.Metrics)
		}

		var np struct {
			Spec struct {
				PodSelector labelSelector `yaml:"podSelector"`
				Ingress     []struct {
					Ports []struct {
						Port any `yaml:"port"`
					} `yaml:"ports"`
				} `yaml:"ingress"`
			} `yaml:"spec"`
		}
		get(t, objs, "NetworkPolicy/relay").decode(t, &np)
		if !selects(np.Spec.PodSelector.MatchLabels, podLabels) {
			t.Errorf("NetworkPolicy selects %v, not the relay's pods", np.Spec.PodSelector.MatchLabels)
		}
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				if _, ok := c.port(p.Port); !ok {
					t.Errorf("NetworkPolicy port %v is not a container port", p.Port)
				}
			}
		}
	})

	t.Run("kustomization", func(t *testing.T) {
		var k struct {
			Resources []string `yaml:"resources"`
		}
		decodeYAML(t, filepath.Join("k8s", "kustomization.yaml"), &k)
		for key, o := range objs {
			base := filepath.Base(o.file)
			switch {
			case base == "kustomization.yaml":
			case base == "secret.example.yaml":
				if slices.Contains(k.Resources, base) {
					t.Error("kustomization.yaml applies secret.example.yaml: its placeholder values would replace real secrets")
				}
			case !slices.Contains(k.Resources, base):
				t.Errorf("kustomization.yaml does not list %s (%s)", base, key)
			}
		}
	})
}
