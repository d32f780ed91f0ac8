package config

import "gopkg.in/yaml.v3"

// Show renders the config as /config serves it, in the form it was written: the projects
// list, or the top-level keys of the shorthand. Secrets show as "<secret>" (which Load
// refuses as a secret, saying why). Credentials taken from the environment are left out,
// with a comment that names the variables: the text loads back, with the same
// environment, as the same config, instead of signing with a literal "<secret>".
func (c *Config) Show() ([]byte, error) {
	shown := *c
	var comments []credentialComments
	if c.shorthandForm || len(c.Projects) == 0 {
		shown.Projects = nil
		comments = append(comments, hideEnvironment(&shown.Credentials))
	} else {
		shown.Projects = make([]Project, len(c.Projects))
		for i, p := range c.Projects {
			comments = append(comments, hideEnvironment(&p.Credentials))
			shown.Projects[i] = p
		}
	}
	var doc yaml.Node
	if err := doc.Encode(&shown); err != nil {
		return nil, err
	}
	if shown.Projects == nil {
		comments[0].annotate(&doc)
		return yaml.Marshal(&doc)
	}
	drop := map[string]bool{}
	for _, k := range projectKeys {
		drop[k] = true
	}
	kept := doc.Content[:0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if !drop[doc.Content[i].Value] {
			kept = append(kept, doc.Content[i], doc.Content[i+1])
		}
	}
	doc.Content = kept
	if _, list := lookup(&doc, "projects"); list != nil {
		for i, item := range list.Content {
			comments[i].annotate(item)
		}
	}
	return yaml.Marshal(&doc)
}

// credentialComments say where a project's credentials came from when the environment
// gave them, in place of the values.
type credentialComments struct{ credentials, password string }

// hideEnvironment clears the AK/SK that c took from the environment, which a shown config
// leaves out, and says so in comments. The IAM password from the environment is not a
// key, so it needs the comment only.
func hideEnvironment(c *Credentials) credentialComments {
	var out credentialComments
	if c.FromEnv != "" {
		c.AccessKey, c.SecretKey = "", ""
		out.credentials = "AK/SK from the environment: " + c.FromEnv
	}
	if p := c.IAMPassword; p != nil && p.PasswordFile == "" && p.Password != "" {
		out.password = "password from the environment: HUAWEICLOUD_SDK_IAM_PASSWORD"
	}
	return out
}

// annotate writes the comments on the credentials of n, a project's mapping (or the
// file's, for the shorthand).
func (cc credentialComments) annotate(n *yaml.Node) {
	if key, value := lookup(n, "credentials"); key != nil {
		key.LineComment = cc.credentials
		if key, _ := lookup(value, "iam_password"); key != nil {
			key.LineComment = cc.password
		}
	}
}

// lookup finds a key of a mapping node and its value.
func lookup(n *yaml.Node, name string) (key, value *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}
