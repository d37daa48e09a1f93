package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Meta is an instance's metadata items (nova's instance.metadata) in nova's
// row order. Nova reads the instance_metadata rows of an instance in id
// order into a dict (nova/utils.py metadata_to_dict) and json.dumps it
// without sort_keys, so meta_data.json lists the keys in the order they
// were first set; an update keeps a key's row and so its place, and new
// keys go last (nova/db/main/api.py _instance_metadata_update_in_place).
// It is written as a JSON object and a YAML mapping in that order.
type Meta []MetaItem

// MetaItem is one key and its value.
type MetaItem struct {
	Key   string
	Value string
}

// Get returns the value of key.
func (m Meta) Get(key string) (string, bool) {
	for _, it := range m {
		if it.Key == key {
			return it.Value, true
		}
	}
	return "", false
}

// Set gives key a value: a key already present keeps its place, a new key
// goes last, as nova's rows do.
func (m *Meta) Set(key, value string) {
	for i := range *m {
		if (*m)[i].Key == key {
			(*m)[i].Value = value
			return
		}
	}
	*m = append(*m, MetaItem{key, value})
}

// Updated is nova's instance_metadata_update with delete=True: the items of
// want, where the keys m already has keep their places and new keys follow
// in want's order. m is not changed.
func (m Meta) Updated(want Meta) Meta {
	out := Meta{}
	for _, it := range m {
		if v, ok := want.Get(it.Key); ok {
			out = append(out, MetaItem{it.Key, v})
		}
	}
	for _, it := range want {
		out.Set(it.Key, it.Value)
	}
	return out
}

// MarshalJSON writes an object with the keys in order; nil is {}.
func (m Meta) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, it := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(it.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(it.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object of strings keeping its key order; a
// repeated key keeps its first place and its last value, as json.loads.
func (m *Meta) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	if tok == nil {
		*m = nil
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("meta: not a JSON object")
	}
	var out Meta // {} reads as nil, as nil writes as {}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("meta %q: %w", kt, err)
		}
		out.Set(kt.(string), v)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	*m = out
	return nil
}

// MarshalYAML writes a mapping with the keys in order.
func (m Meta) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, it := range m {
		n.Content = append(n.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: it.Key},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: it.Value})
	}
	return n, nil
}

// UnmarshalYAML reads a mapping of scalars keeping its key order.
func (m *Meta) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: meta must be a mapping", n.Line)
	}
	out := Meta{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: meta keys and values must be strings", k.Line)
		}
		out.Set(k.Value, v.Value)
	}
	*m = out
	return nil
}
