//! Custom-resource admission: structural schema checks, defaulting, pruning, OpenAPI v3
//! validation and `x-kubernetes-validations` CEL rules, worded as kube-apiserver words them.
