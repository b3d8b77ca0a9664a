// Package thrifttest dials the proxies' Thrift services as the DDMQ SDKs do
// (framed transport, compact protocol), for tests.
package thrifttest

import (
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
)

// Open connects to addr (2 s connect timeout, socketTimeout per read and
// write) and returns the compact protocol over a framed transport; close
// releases the connection.
func Open(addr string, socketTimeout time.Duration) (p thrift.TProtocol, close func(), err error) {
	cfg := &thrift.TConfiguration{ConnectTimeout: 2 * time.Second, SocketTimeout: socketTimeout}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := trans.Open(); err != nil {
		return nil, nil, err
	}
	return thrift.NewTCompactProtocolConf(trans, cfg), func() { trans.Close() }, nil
}

// DialConsumer opens a cproxy client (see Open).
func DialConsumer(addr string, socketTimeout time.Duration) (*consumer.ConsumerServiceClient, func(), error) {
	p, closer, err := Open(addr, socketTimeout)
	if err != nil {
		return nil, nil, err
	}
	return consumer.NewConsumerServiceClient(thrift.NewTStandardClient(p, p)), closer, nil
}

// DialProducer opens a pproxy client (see Open).
func DialProducer(addr string, socketTimeout time.Duration) (*producer.ProducerServiceClient, func(), error) {
	p, closer, err := Open(addr, socketTimeout)
	if err != nil {
		return nil, nil, err
	}
	return producer.NewProducerServiceClient(thrift.NewTStandardClient(p, p)), closer, nil
}

// Consumer dials a cproxy client that is closed when t ends; a dial
// failure fails t. A client is not safe for concurrent use.
func Consumer(t testing.TB, addr string, socketTimeout time.Duration) *consumer.ConsumerServiceClient {
	t.Helper()
	c, closer, err := DialConsumer(addr, socketTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	return c
}

// Producer dials a pproxy client that is closed when t ends; a dial
// failure fails t. A client is not safe for concurrent use.
func Producer(t testing.TB, addr string, socketTimeout time.Duration) *producer.ProducerServiceClient {
	t.Helper()
	c, closer, err := DialProducer(addr, socketTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	return c
}
