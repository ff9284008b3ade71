package registry

// QuietForTest exposes quiet to the tests.
var QuietForTest = quiet
