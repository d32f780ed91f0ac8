package config

import "gopkg.in/yaml.v3"

// Show renders the config as /config serves it. Secrets show as "<secret>" (which Load
// refuses as a secret, saying why). Credentials taken from the environment are left out,
// with a comment that names the variables: the text loads back, with the same
// environment, as the same config, instead of signing with a literal "<secret>".
func (c *Config) Show() ([]byte, error) {
	shown := *c
	var credentials, password string
	if c.Credentials.FromEnv != "" {
		shown.Credentials.AccessKey, shown.Credentials.SecretKey = "", ""
		credentials = "AK/SK from the environment: " + c.Credentials.FromEnv
	}
	if p := c.Credentials.IAMPassword; p != nil && p.PasswordFile == "" && p.Password != "" {
		password = "password from the environment: HUAWEICLOUD_SDK_IAM_PASSWORD"
	}
	var doc yaml.Node
	if err := doc.Encode(&shown); err != nil {
		return nil, err
	}
	if key, value := lookup(&doc, "credentials"); key != nil {
		key.LineComment = credentials
		if key, _ := lookup(value, "iam_password"); key != nil {
			key.LineComment = password
		}
	}
	return yaml.Marshal(&doc)
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
