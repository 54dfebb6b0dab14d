// Package deploy holds traceport's Kubernetes manifests (kustomize, Helm,
// Istio, Prometheus) and no code: its tests render them with the real tools,
// decode every object strictly with the Kubernetes API types and check them
// against the traceport binary. A module of its own, so the Kubernetes, Helm
// and Prometheus dependencies stay out of traceport's go.mod.
package deploy
