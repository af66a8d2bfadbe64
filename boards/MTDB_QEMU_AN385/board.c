// MicroTetherDB qemu board glue (mps2-an385, Cortex-M3, run by qemu-system-arm).
//
// The qemu port links with -nostdlib and has no clock, so this file provides:
//  1. malloc/free/calloc/realloc as tracked GC-heap blocks and __errno, for
//     Berkeley DB (btree) and mp_stream_posix_*();
//  2. a clock from the Cortex-M SysTick (an emulated timer: under -icount it
//     counts executed instructions, so it is deterministic) for the time module;
//  3. an interrupt-driven UART receiver (replaces the port's busy-polling
//     mp_hal_stdin_rx_chr() via -Wl,--wrap): Ctrl-C interrupts running code,
//     and the CPU sleeps (WFI) instead of spinning while waiting for input;
//  4. the `ramdisk` module: a block device over a static RAM buffer (outside
//     the GC heap), to be formatted as LittleFS and mounted at /flash.
// The peripheral addresses and IRQ numbers are those of QEMU's mps2-an385.

#include <errno.h>
#include <string.h>

#include "py/runtime.h"
#include "py/gc.h"
#include "py/mphal.h"
#include "py/stream.h"
#include "extmod/vfs.h"
#include "shared/runtime/interrupt_char.h"
#include "shared/timeutils/timeutils.h"
#include "lib/oofatfs/ff.h"

// ---------------------------------------------------------------------------
// 1. C heap for Berkeley DB, on the GC heap, as tracked allocations.
//
// MicroPython's GC keeps a block alive only through a pointer to its start,
// while Berkeley DB holds pointers into its blocks (a page is `bucket + 1`).
// Plain gc_alloc() blocks could therefore be collected while btree still used
// them (a collection runs inside any allocation that finds the heap full):
// a use-after-free on the GC heap, seen as random NameErrors and HardFaults
// after out-of-memory errors. m_tracked_calloc() links every block into a
// list rooted in the VM state, so nothing btree holds is ever collected; it
// returns NULL when the heap is full, which Berkeley DB reports as ENOMEM.
// (ESP32 images use ESP-IDF's C heap: this is board glue for qemu only.)

#define TRACKED_HDR (2 * sizeof(void *)) // m_tracked_node_t: prev, next (GC on)

static int board_errno;

int *__errno(void) {
    return &board_errno;
}

void *malloc(size_t size) {
    void *p = m_tracked_calloc(1, size ? size : 1);
    if (p == NULL) {
        board_errno = ENOMEM;
    }
    return p;
}

void free(void *ptr) {
    m_tracked_free(ptr); // (NULL: nothing)
}

void *calloc(size_t nmemb, size_t size) {
    if (size != 0 && nmemb > (size_t)-1 / size) {
        board_errno = ENOMEM;
        return NULL;
    }
    return malloc(nmemb * size); // m_tracked_calloc zeroes
}

void *realloc(void *ptr, size_t size) {
    if (ptr == NULL) {
        return malloc(size);
    }
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    size_t old = gc_nbytes((uint8_t *)ptr - TRACKED_HDR) - TRACKED_HDR;
    void *p = malloc(size);
    if (p == NULL) {
        return NULL; // the old block stays valid, as realloc() promises
    }
    memcpy(p, ptr, old < size ? old : size);
    free(ptr);
    return p;
}

// ---------------------------------------------------------------------------
// Cortex-M system registers, and a vector table in RAM.
//
// The port's vector table (startup.c) sends SysTick and all IRQs to fault
// handlers; we copy its 16 system entries into a RAM table with our handlers
// and point VTOR at it.

#define REG32(addr) (*(volatile uint32_t *)(addr))
#define SYST_CSR    REG32(0xe000e010)
#define SYST_RVR    REG32(0xe000e014)
#define SYST_CVR    REG32(0xe000e018)
#define NVIC_ISER0  REG32(0xe000e100)
#define SCB_ICSR    REG32(0xe000ed04)
#define SCB_VTOR    REG32(0xe000ed08)
#define ICSR_PENDSTSET (1u << 26)

#define NUM_VECTORS (16 + 32)
extern const uint32_t isr_vector[];
extern void Default_Handler(void);
static uint32_t ram_vectors[NUM_VECTORS] __attribute__((aligned(256)));

static inline uint32_t irq_disable(void) {
    uint32_t primask;
    __asm volatile ("mrs %0, primask\n cpsid i" : "=r" (primask) : : "memory");
    return primask;
}

static inline void irq_restore(uint32_t primask) {
    __asm volatile ("msr primask, %0" : : "r" (primask) : "memory");
}

// ---------------------------------------------------------------------------
// 2. Clock: SysTick on the 25 MHz CPU clock, one interrupt every 10 ms; the
// time within a period comes from the counter, so ticks_us is exact to 40 ns.

#define CPU_HZ          (25000000u)
#define SYSTICK_MS      (10u)
#define SYSTICK_CYCLES  (CPU_HZ / 1000u * SYSTICK_MS)

static volatile uint32_t systick_periods;

static void systick_isr(void) {
    systick_periods++;
}

// Periods and cycles into the current period, read consistently.
static void uptime(uint32_t *periods, uint32_t *cycles) {
    uint32_t primask = irq_disable();
    uint32_t n = systick_periods;
    uint32_t val = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) {
        // The counter wrapped but the interrupt has not run yet.
        n++;
        val = SYST_CVR;
    }
    irq_restore(primask);
    *periods = n;
    *cycles = SYSTICK_CYCLES - 1 - val;
}

// ticks_* only need their low 30 bits, so 32-bit wrap-around is fine.
mp_uint_t mp_hal_ticks_cpu(void) {
    uint32_t n, c;
    uptime(&n, &c);
    return n * SYSTICK_CYCLES + c;
}

mp_uint_t mp_hal_ticks_us(void) {
    uint32_t n, c;
    uptime(&n, &c);
    return n * (SYSTICK_MS * 1000u) + c / (CPU_HZ / 1000000u);
}

mp_uint_t mp_hal_ticks_ms(void) {
    uint32_t n, c;
    uptime(&n, &c);
    return n * SYSTICK_MS + c / (CPU_HZ / 1000u);
}

// Time since the Epoch (2000-01-01) = uptime.
uint64_t mp_hal_time_ns(void) {
    uint32_t n, c;
    uptime(&n, &c);
    return (uint64_t)n * (SYSTICK_MS * 1000000u) + (uint64_t)c * (1000000000u / CPU_HZ);
}

// File times on VfsFat.
DWORD get_fattime(void) {
    timeutils_struct_time_t tm;
    timeutils_seconds_since_epoch_to_struct_time(mp_hal_time_ns() / 1000000000u, &tm);
    return ((tm.tm_year - 1980) << 25) | (tm.tm_mon << 21) | (tm.tm_mday << 16)
           | (tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2);
}

// Sleep with WFI only when a whole tick period remains, else spin.
void mtdb_board_wfe(mp_uint_t timeout_ms) {
    if (timeout_ms >= SYSTICK_MS) {
        __asm volatile ("wfi");
    }
}

void mp_hal_delay_ms(mp_uint_t ms) {
    mp_uint_t start = mp_hal_ticks_ms();
    mp_uint_t elapsed;
    while ((elapsed = mp_hal_ticks_ms() - start) < ms) {
        mp_event_handle_nowait(); // raises KeyboardInterrupt on Ctrl-C
        mtdb_board_wfe(ms - elapsed);
    }
}

void mp_hal_delay_us(mp_uint_t us) {
    mp_uint_t start = mp_hal_ticks_us();
    while (mp_hal_ticks_us() - start < us) {
    }
}

// ---------------------------------------------------------------------------
// 3. UART0 (CMSDK APB UART at 0x40004000, RX interrupt = IRQ 0).
//
// The ISR moves received bytes into a ring buffer and turns Ctrl-C into a
// KeyboardInterrupt while code runs. When the ring is full it leaves the byte
// in the UART, which makes QEMU hold back the rest (flow control).

#define UART0_DATA      REG32(0x40004000)
#define UART0_STATE     REG32(0x40004004)
#define UART0_CTRL      REG32(0x40004008)
#define UART0_INTSTATUS REG32(0x4000400c)
#define UART_STATE_RXFULL (1u << 1)
#define UART_CTRL_RXIE    (1u << 3)
#define UART_INT_RX       (1u << 1)
#define UART0_RX_IRQ      (0)

#define RX_RING_SIZE (512) // > 2 raw-paste windows of 128 bytes
static uint8_t rx_ring[RX_RING_SIZE];
static volatile uint32_t rx_head, rx_tail; // free-running indices

static void uart_rx_isr(void) {
    UART0_INTSTATUS = UART_INT_RX;
    while ((UART0_STATE & UART_STATE_RXFULL) && rx_head - rx_tail < RX_RING_SIZE) {
        int c = UART0_DATA & 0xff;
        if (c == mp_interrupt_char) {
            mp_sched_keyboard_interrupt();
        } else {
            rx_ring[rx_head++ % RX_RING_SIZE] = c;
        }
    }
}

// Called instead of the port's mp_hal_stdin_rx_chr (linker --wrap).
int __wrap_mp_hal_stdin_rx_chr(void) {
    for (;;) {
        int c = -1;
        uint32_t primask = irq_disable();
        if (rx_tail != rx_head) {
            c = rx_ring[rx_tail++ % RX_RING_SIZE];
        } else if (UART0_STATE & UART_STATE_RXFULL) {
            c = UART0_DATA & 0xff; // left there while the ring was full
        } else {
            // WFI with interrupts masked still wakes on a pending interrupt,
            // so a byte arriving after the checks above is not missed.
            __asm volatile ("wfi");
        }
        irq_restore(primask);
        if (c >= 0) {
            return c;
        }
    }
}

// Run by mp_init() at boot and after each soft reset: only the first call
// does anything (the clock keeps running across soft resets).
void mtdb_board_init(void) {
    // A soft reset re-creates the GC heap, but MicroPython 1.25's mp_init()
    // does not reset the list of tracked allocations: a btree handle left
    // open (or whose close failed) by the previous program would stay its
    // head, a pointer into the new heap, and the next malloc() would write
    // through it into whatever object lives there now.
    MP_STATE_VM(m_tracked_head) = NULL;
    if (SCB_VTOR == (uint32_t)ram_vectors) {
        return;
    }
    for (int i = 0; i < NUM_VECTORS; ++i) {
        ram_vectors[i] = i < 16 ? isr_vector[i] : (uint32_t)&Default_Handler;
    }
    ram_vectors[15] = (uint32_t)&systick_isr;
    ram_vectors[16 + UART0_RX_IRQ] = (uint32_t)&uart_rx_isr;
    __asm volatile ("dsb");
    SCB_VTOR = (uint32_t)ram_vectors;
    __asm volatile ("dsb\n isb");

    systick_periods = 0;
    SYST_RVR = SYSTICK_CYCLES - 1;
    SYST_CVR = 0;
    SYST_CSR = 7; // processor clock, interrupt, enable

    UART0_CTRL |= UART_CTRL_RXIE;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
}

// ---------------------------------------------------------------------------
// 4. ramdisk: block device over a static buffer, for vfs.VfsLfs2.
//
//   bd = ramdisk.RAMDisk()        # always the same disk (one buffer)
//   vfs.VfsLfs2.mkfs(bd); vfs.mount(vfs.VfsLfs2(bd), "/flash")
//
// The contents survive soft resets (not a QEMU restart). Block size 4096 like
// ESP32 flash sectors.

#ifndef MTDB_RAMDISK_BLOCK_SIZE
#define MTDB_RAMDISK_BLOCK_SIZE (4096)
#endif
#ifndef MTDB_RAMDISK_BLOCKS
#define MTDB_RAMDISK_BLOCKS (512) // 2 MiB
#endif

static uint8_t ramdisk_data[MTDB_RAMDISK_BLOCKS * MTDB_RAMDISK_BLOCK_SIZE] __attribute__((aligned(4)));

typedef struct _ramdisk_obj_t {
    mp_obj_base_t base;
} ramdisk_obj_t;

static const mp_obj_type_t ramdisk_type;
static const ramdisk_obj_t ramdisk_obj = {{&ramdisk_type}};

static mp_obj_t ramdisk_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 0, 0, false);
    return MP_OBJ_FROM_PTR(&ramdisk_obj);
}

// Byte range of (block, offset, len), or raise OSError(EINVAL).
static uint8_t *ramdisk_range(mp_obj_t block_in, mp_obj_t offset_in, size_t len) {
    mp_int_t block = mp_obj_get_int(block_in);
    mp_int_t offset = offset_in == MP_OBJ_NULL ? 0 : mp_obj_get_int(offset_in);
    size_t size = sizeof(ramdisk_data);
    if (block < 0 || offset < 0 || (size_t)block >= MTDB_RAMDISK_BLOCKS) {
        mp_raise_OSError(MP_EINVAL);
    }
    size_t start = (size_t)block * MTDB_RAMDISK_BLOCK_SIZE + (size_t)offset;
    if (start > size || len > size - start) {
        mp_raise_OSError(MP_EINVAL);
    }
    return ramdisk_data + start;
}

static mp_obj_t ramdisk_readblocks(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[2], &buf, MP_BUFFER_WRITE);
    memcpy(buf.buf, ramdisk_range(args[1], n_args > 3 ? args[3] : MP_OBJ_NULL, buf.len), buf.len);
    return MP_OBJ_NEW_SMALL_INT(0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ramdisk_readblocks_obj, 3, 4, ramdisk_readblocks);

static mp_obj_t ramdisk_writeblocks(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[2], &buf, MP_BUFFER_READ);
    memcpy(ramdisk_range(args[1], n_args > 3 ? args[3] : MP_OBJ_NULL, buf.len), buf.buf, buf.len);
    return MP_OBJ_NEW_SMALL_INT(0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ramdisk_writeblocks_obj, 3, 4, ramdisk_writeblocks);

static mp_obj_t ramdisk_ioctl(mp_obj_t self_in, mp_obj_t op_in, mp_obj_t arg_in) {
    switch (mp_obj_get_int(op_in)) {
        case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
            return MP_OBJ_NEW_SMALL_INT(MTDB_RAMDISK_BLOCKS);
        case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
            return MP_OBJ_NEW_SMALL_INT(MTDB_RAMDISK_BLOCK_SIZE);
        case MP_BLOCKDEV_IOCTL_BLOCK_ERASE:
            // Like NOR flash: an erased block reads as 0xff.
            memset(ramdisk_range(arg_in, MP_OBJ_NULL, MTDB_RAMDISK_BLOCK_SIZE), 0xff, MTDB_RAMDISK_BLOCK_SIZE);
            return MP_OBJ_NEW_SMALL_INT(0);
        default: // init, deinit, sync
            return MP_OBJ_NEW_SMALL_INT(0);
    }
}
static MP_DEFINE_CONST_FUN_OBJ_3(ramdisk_ioctl_obj, ramdisk_ioctl);

static const mp_rom_map_elem_t ramdisk_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&ramdisk_readblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&ramdisk_writeblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&ramdisk_ioctl_obj) },
};
static MP_DEFINE_CONST_DICT(ramdisk_locals_dict, ramdisk_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    ramdisk_type,
    MP_QSTR_RAMDisk,
    MP_TYPE_FLAG_NONE,
    make_new, ramdisk_make_new,
    locals_dict, &ramdisk_locals_dict
    );

static const mp_rom_map_elem_t ramdisk_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_ramdisk) },
    { MP_ROM_QSTR(MP_QSTR_RAMDisk), MP_ROM_PTR(&ramdisk_type) },
};
static MP_DEFINE_CONST_DICT(ramdisk_module_globals, ramdisk_module_globals_table);

const mp_obj_module_t mtdb_ramdisk_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&ramdisk_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_ramdisk, mtdb_ramdisk_module);
