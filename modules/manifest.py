# The database package, frozen the same way on every board (unix, qemu, ESP32).
package("microtetherdb")
