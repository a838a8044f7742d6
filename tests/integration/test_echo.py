"""What is read is written back unchanged: the seed scenario through
echo-client, 1 MiB and 64 MiB random payloads both through echo-client
and through a Python socket that sends while it reads, every byte value,
and many small round trips on one connection."""

import echodtest
from echodtest import (EchodTestCase, MIB, SEED_MESSAGE, exchange,
                       random_payload, recv_exactly, run_client)


class Echo(EchodTestCase):

    def setUp(self):
        self.server = self.start_echod()

    def tearDown(self):
        if self.server.alive():
            self.server.stop_cleanly(self)

    # The seed scenario: echo-client's defaults against echod.

    def test_seed_scenario_client_prints_five_greetings(self):
        r = run_client(["127.0.0.1", self.server.port], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(),
                         "Received: Hello from client!\n" * 5)

    def test_seed_message_echoed_byte_exact_over_socket(self):
        with self.connect(self.server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)

    # Large random payloads.

    def test_client_1mib_random_payload_verified(self):
        r = run_client(["-n", "1", "-s", "1m", "127.0.0.1", self.server.port],
                       timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(),
                         "Received: 1048576 bytes, verified\n")

    def test_client_64mib_random_payload_verified(self):
        r = run_client(["-n", "1", "-s", "64m", "-t", "120",
                        "127.0.0.1", self.server.port], timeout=150)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(),
                         "Received: 67108864 bytes, verified\n")

    def test_socket_1mib_random_payload_byte_exact(self):
        payload = random_payload(MIB, seed=1)
        with self.connect(self.server.address) as s:
            self.assertBytesEqual(exchange(s, payload, 60), payload)

    def test_socket_64mib_random_payload_byte_exact(self):
        payload = random_payload(64 * MIB, seed=64)
        with self.connect(self.server.address) as s:
            self.assertBytesEqual(exchange(s, payload, 120), payload)

    # Every byte value, in bulk and one round trip at a time.

    def test_all_256_byte_values_echoed_exact(self):
        payload = echodtest.every_byte_value(1000)
        with self.connect(self.server.address) as s:
            self.assertBytesEqual(exchange(s, payload, 30), payload)

    def test_all_256_byte_values_round_trips_exact(self):
        block = echodtest.every_byte_value(1)
        with self.connect(self.server.address) as s:
            for i in range(16):
                s.sendall(block)
                self.assertBytesEqual(recv_exactly(s, 256), block,
                                      f"round {i}")

    def test_single_bytes_round_trip_exact(self):
        with self.connect(self.server.address) as s:
            for b in (0, 10, 13, 255, 0x7f, 0x80):
                s.sendall(bytes([b]))
                self.assertEqual(recv_exactly(s, 1), bytes([b]))

    def test_many_small_round_trips_on_one_connection(self):
        with self.connect(self.server.address) as s:
            for i in range(1000):
                msg = f"message {i} ".encode() * (1 + i % 7)
                s.sendall(msg)
                self.assertEqual(recv_exactly(s, len(msg)), msg)

    def test_connection_with_no_data_closes_after_half_close(self):
        with self.connect(self.server.address) as s:
            self.assertEqual(exchange(s, b"", 10, half_close=True), b"")

    def test_sequential_connections_each_echoed(self):
        for i in range(50):
            msg = f"connection {i}\n".encode()
            with echodtest.connect(self.server.address) as s:
                self.assertEqual(exchange(s, msg, 10, half_close=True), msg)


if __name__ == "__main__":
    echodtest.main()
