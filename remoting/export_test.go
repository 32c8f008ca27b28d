package remoting

// WithProtocol is withProtocol for the external tests.
var WithProtocol = withProtocol
