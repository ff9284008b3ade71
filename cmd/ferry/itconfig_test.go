package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-oss/ferry/registry"
)

// the cfg.yaml of image-transmit's README (d5e5061), comments and all,
// with its optional fields set
const itREADMEConfig = `source: # 源仓库信息配置,可以支持多个
- registry: "http://10.45.80.1"
  user: #用户名和密码，如果匿名访问，用户名和密码都留空即可
  password:
  #name: #可选配置,指定名称
target:  # 目标仓库信息配置,可以支持多个
- registry: "http://10.45.46.109"
  user:
  password:
  repository: yyyy
  name: gz
platform: linux/amd64 # 保存文件的时候, 只会保存指定平台的镜像
maxconn: 5 # 可选配置，最大并发数，默认5
retries: 2 # 可选配置，最大重试次数，默认2
singlefile: false #可选配置，是否生成单一文件，默认关
dockerfile: false #可选配置，是否保存成Docker兼容的格式，本功能需要同时打开singlefile开关
compressor: squashfs
lang: en_US # 可选配置，指定语言版本,支持中英文两种语言，默认取操作系统语言
cache:   # 可选配置，是否开启本地缓存，默认关，详细参考说明
  pathname: cache # 缓存目录
  keepdays: 7  # 缓存最长保留时间，默认7
  keepsize: 10  # 缓存目录最大使用量，单位G，默认10
outprefix: proj/img
interval: 60 # 可选配置，守护模式下定时扫描的时间间隔，默认60
dingtalk: # 可选配置,用于发送钉钉通知，支持多个
- token : abc # 用于配置钉钉令牌
  secret: def # 用于配置钉钉密钥
`

func TestImageTransmitConfig(t *testing.T) {
	c, err := ParseConfig([]byte(itREADMEConfig))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := c.Lookup(c.Source)
	dst, _ := c.Lookup("gz")
	switch {
	case c.Format != "image-transmit":
		t.Fatalf("format %q", c.Format)
	case c.Source != "http://10.45.80.1-" || src.Registry != "10.45.80.1" || src.TLS != registry.TLSDisabled:
		t.Errorf("source %q: %+v", c.Source, src)
	case c.Target != "gz" || dst.Registry != "10.45.46.109" || dst.Namespace != "yyyy" || !dst.ReplaceNamespace || dst.TLS != registry.TLSDisabled:
		t.Errorf("target %q: %+v", c.Target, dst)
	case c.Jobs != 5 || *c.Retries != 2 || c.Compression != "squashfs" || c.Platforms[0] != "linux/amd64":
		t.Errorf("settings: %+v", c)
	case c.Cache.Dir != "data/cache" || c.Cache.KeepDays != 7 || c.Cache.KeepSize != "10GiB":
		t.Errorf("cache %+v", c.Cache)
	case c.Output.Prefix != "img" || c.Output.Dir != "proj" || len(c.Notify) != 1 || c.Notify[0].Secret != "def" || c.Registries[1].Pass != "":
		t.Errorf("output %+v, notify %+v", c.Output, c.Notify)
	}
	if len(c.Notes) < 12 {
		t.Errorf("%d notes: every field says how it was understood:\n%s", len(c.Notes), strings.Join(c.Notes, "\n"))
	}
	// convert prints ferry's own cfg.yaml, which reads back the same
	out, err := nativeYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatalf("converted cfg.yaml: %v\n%s", err, out)
	}
	if back.Format != "" || back.Source != c.Source || !back.Registries[1].ReplaceNamespace || back.Registries[1].Namespace != "yyyy" || back.Cache != c.Cache || back.Notify[0] != c.Notify[0] {
		t.Errorf("converted config differs:\n%s", out)
	}
	if err := squashfsRefused(c.Compression); err == nil || !strings.Contains(err.Error(), "ferry writes tar parts") {
		t.Errorf("squashfs for writing: %v", err)
	}
}

func TestConfigSchemesAndKeepSize(t *testing.T) {
	for _, tc := range []struct {
		cfg, tls, host string
	}{
		{"registries:\n  - registry: http://reg.example:5000/\n", registry.TLSDisabled, "reg.example:5000"},
		{"registries:\n  - registry: https://reg.example\n", registry.TLSEnabled, "reg.example"},
		{"registries:\n  - registry: reg.example\n", registry.TLSAuto, "reg.example"},
	} {
		c, err := ParseConfig([]byte(tc.cfg))
		if err != nil || c.Registries[0].TLS != tc.tls || c.Registries[0].Registry != tc.host {
			t.Errorf("%q: %v %+v", tc.cfg, err, c)
		}
	}
	if _, err := ParseConfig([]byte("registries:\n  - registry: http://reg.example\n    tls: enabled\n")); err == nil {
		t.Error("http:// with tls: enabled accepted")
	}
	for in, want := range map[string]int64{"10": 10 << 30, "0.5": 1 << 29, "10GiB": 10 << 30, "500MB": 500e6, "": 0} {
		if got, err := parseKeepSize(in); err != nil || got != want {
			t.Errorf("keepSize %q: %d %v, want %d", in, got, err, want)
		}
	}
}

func TestImageTransmitOut(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"ferry", "save", "-out=img"}, []string{"ferry", "save", "--it-out=img"}},
		{[]string{"ferry", "save", "-out", "sub/img"}, []string{"ferry", "save", "--it-out=sub/img"}},
		{[]string{"ferry", "save", "-out", dir}, []string{"ferry", "save", "--out=" + dir}},                  // an existing directory
		{[]string{"ferry", "save", "-out", "new/"}, []string{"ferry", "save", "--out=new/"}},                 // a directory by its /
		{[]string{"ferry", "save", "-out", "x", "-mkdir"}, []string{"ferry", "save", "-out", "x", "-mkdir"}}, // --mkdir: a directory
		{[]string{"ferry", "save", "--out", "x"}, []string{"ferry", "save", "--out", "x"}},
		{[]string{"ferry", "export", "-out", "x"}, []string{"ferry", "export", "-out", "x"}},
	} {
		if got := imageTransmitOut(tc.in); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%v: %v, want %v", tc.in, got, tc.want)
		}
	}
	// the prefix names the files; a directory in it is made in the output directory
	out := filepath.Join(dir, "o")
	_ = os.Mkdir(out, 0o755)
	code, _, stderr := ferry(t, "", "save", "-out=site/proj", "--out", out, "localhost:1/a:1")
	if code == 0 || !strings.Contains(stderr, "prefix=proj") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
