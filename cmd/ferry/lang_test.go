package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain runs the tests in English whatever the environment says
// (LC_ALL=C); the tests of Chinese set their language themselves.
func TestMain(m *testing.M) {
	os.Setenv("LC_ALL", "C")
	os.Exit(m.Run())
}

// TestChineseCLI: help and messages in Chinese from cfg lang or the
// environment; cfg lang wins over the environment.
func TestChineseCLI(t *testing.T) {
	dir := t.TempDir()
	zh := filepath.Join(dir, "zh.yaml")
	en := filepath.Join(dir, "en.yaml")
	writeFile(t, zh, "lang: zh_CN\n")
	writeFile(t, en, "lang: en_US\n")
	meta := filepath.Join("..", "..", "testdata", "bundles", "v1-none", "ferry_full_20261101T020000Z_meta.yaml")
	tests := []struct {
		name, lcAll string
		args        []string
		code        int
		want        []string // in stdout+stderr
	}{
		{"help from cfg lang", "C", []string{"--config", zh, "--help"}, exitOK, []string{"用法：", "将镜像仓库中的镜像保存为镜像包", "全局选项：", "显示帮助"}},
		{"command help from LC_ALL", "zh_CN.UTF-8", []string{"upload", "--help"}, exitOK, []string{"在推送到镜像仓库或载入 Docker 的同时校验镜像包", "docker 目标：要载入的平台", "(默认: 4)"}},
		{"usage error", "zh_CN.UTF-8", []string{"upload"}, exitUsage, []string{"ferry：upload 只接受一个 meta 文件", "运行 'ferry upload --help' 查看用法。"}},
		{"did you mean", "zh_CN.UTF-8", []string{"uplaod"}, exitUsage, []string{`未知命令 "uplaod"（是否想输入 upload？）`}},
		{"a result", "zh_CN.UTF-8", []string{"-q", "verify", meta}, exitOK, []string{"ferry_full_20261101T020000Z：OK（2 个分卷，6 个 blob"}},
		{"cfg lang wins", "zh_CN.UTF-8", []string{"-c", en, "upload"}, exitUsage, []string{"ferry: upload takes one meta file"}},
		{"English", "C", []string{"upload"}, exitUsage, []string{"ferry: upload takes one meta file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LC_ALL", tc.lcAll)
			code, stdout, stderr := ferry(t, "", tc.args...)
			out := stdout + stderr
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
		})
	}
}

func TestChooseLang(t *testing.T) {
	dir := t.TempDir()
	zh := filepath.Join(dir, "zh.yaml")
	writeFile(t, zh, "lang: zh_CN\nplatform: [linux/amd64]\n") // read for lang even though LoadConfig refuses the unknown field later
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		zh   bool
	}{
		{[]string{"ferry", "--config", zh, "save"}, nil, true},
		{[]string{"ferry", "--config=" + zh}, nil, true},
		{[]string{"ferry", "save", "-c", zh}, nil, true},
		{[]string{"ferry", "save"}, map[string]string{"FERRY_CONFIG": zh}, true},
		{[]string{"ferry", "save", "--", "-c", zh}, nil, false},
		{[]string{"ferry", "save"}, map[string]string{"LANG": "zh_CN.UTF-8"}, true},
		{[]string{"ferry", "save"}, nil, false},
	} {
		if got := chooseLang(tc.args, env(tc.env)).String() == "zh-Hans"; got != tc.zh {
			t.Errorf("chooseLang(%v, %v): Chinese %v, want %v", tc.args, tc.env, got, tc.zh)
		}
	}
}
