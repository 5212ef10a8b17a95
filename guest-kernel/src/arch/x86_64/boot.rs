//! PVH entry: from 32-bit protected mode (paging off) to 64-bit Rust.
//!
//! A PVH loader (our VMM through linux-loader, or QEMU `-kernel`) finds the Xen
//! `PHYS32_ENTRY` note below, loads the segments at their physical addresses and jumps to
//! `pvh_start32` with `ebx` = physical address of `hvm_start_info`. The code here:
//! 1. builds boot page tables: the first 4 GiB identity-mapped (so the next instruction
//!    after enabling paging still runs), the same 4 GiB at [`PHYS_OFFSET`] (the direct
//!    map of physical memory), and the first 1 GiB at [`KERNEL_VMA`] (the kernel image);
//! 2. enables PAE, long mode and NX, then paging;
//! 3. far-jumps to 64-bit code, zeroes `.bss`, switches to the boot stack and calls
//!    `kernel_main(start_info_paddr)`.
//!
//! The page-table pages live in `.boot.data` as zero-filled file data, so they need no
//! clearing at run time (loaders copy file bytes but do not zero `.bss`).
//!
//! [`PHYS_OFFSET`]: crate::mm::PHYS_OFFSET
//! [`KERNEL_VMA`]: crate::mm::KERNEL_VMA

use core::arch::global_asm;

/// Size of the boot (and first kernel) stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

#[unsafe(link_section = ".stack")]
#[used]
static mut BOOT_STACK: [u8; BOOT_STACK_SIZE] = [0; BOOT_STACK_SIZE];

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* n_namesz: "Xen\0" */
    .long 4                 /* n_descsz: a 32-bit physical address */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start32

    .section .boot.text, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx                        /* keep hvm_start_info's address for Rust */
    lea esp, [boot_stack32_top]         /* PVH gives no stack; the far return needs one */

    /* 2 MiB pages for the first 4 GiB: 2048 entries in four page directories. */
    lea edi, [boot_pd]
    mov eax, 0x83                       /* present | writable | page size */
    xor edx, edx                        /* bits 32..63 of the physical address */
    mov ecx, 2048
2:
    mov [edi], eax
    mov [edi + 4], edx
    add eax, 0x200000
    adc edx, 0
    add edi, 8
    dec ecx
    jnz 2b
    /* 0xfe000000..4 GiB holds MMIO (virtio-mmio, IOAPIC, LAPIC): uncached. */
    lea edi, [boot_pd + 2032 * 8]
    mov ecx, 16
3:
    or dword ptr [edi], 0x18            /* PWT | PCD */
    add edi, 8
    dec ecx
    jnz 3b

    /* Low PDPT: four entries, one per page directory. */
    lea eax, [boot_pd + 0x3]
    mov [boot_pdpt_low], eax
    add eax, 0x1000
    mov [boot_pdpt_low + 8], eax
    add eax, 0x1000
    mov [boot_pdpt_low + 16], eax
    add eax, 0x1000
    mov [boot_pdpt_low + 24], eax
    /* High PDPT: entry 510 (0xffffffff80000000) maps the first GiB for the kernel image. */
    lea eax, [boot_pd + 0x3]
    mov [boot_pdpt_high + 510 * 8], eax
    /* PML4: identity (0), direct map (256 = 0xffff800000000000), kernel (511). */
    lea eax, [boot_pdpt_low + 0x3]
    mov [boot_pml4], eax
    mov [boot_pml4 + 256 * 8], eax
    lea eax, [boot_pdpt_high + 0x3]
    mov [boot_pml4 + 511 * 8], eax

    call enable_long_mode
    push 0x08
    lea eax, [pvh_start64]
    push eax
    retf

    /* Every CPU's way from 32-bit protected mode into long mode: the boot page tables
       (the kernel's own), PAE, LME and NXE, paging, then the boot GDT. Returns in
       compatibility mode; the caller far-jumps to its 64-bit code. */
enable_long_mode:
    lea eax, [boot_pml4]
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20                        /* PAE */
    mov cr4, eax
    mov ecx, 0xc0000080                 /* EFER */
    rdmsr
    or eax, 0x900                       /* LME | NXE */
    wrmsr
    mov eax, cr0
    or eax, 0x80010001                  /* PG | WP | PE */
    mov cr0, eax
    lgdt [boot_gdt_ptr]
    ret

    .code64
    /* Flat data segments, null FS and GS (their bases come from MSRs later). */
flat_segments64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    ret

pvh_start64:
    call flat_segments64

    /* Zero .bss (linked high, reached through the kernel mapping). */
    movabs rdi, offset __bss_start
    movabs rcx, offset __bss_end
    sub rcx, rdi
    shr rcx, 3
    xor eax, eax
    rep stosq

    movabs rsp, offset {stack} + {stack_size}
    xor ebp, ebp
    mov edi, esi                        /* kernel_main(start_info_paddr) */
    movabs rax, offset {main}
    call rax
4:
    hlt
    jmp 4b

    /* The 32-bit entry of the other CPUs (see smp): from the trampoline in protected
       mode with flat 32-bit segments, paging off, interrupts off. */
    .code32
    .global ap_start32
ap_start32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    lea esp, [boot_stack32_top]         /* one AP starts at a time: the boot CPU's is free */
    call enable_long_mode               /* the tables the boot CPU built */
    push 0x08
    lea eax, [ap_start64]
    push eax
    retf

    .code64
ap_start64:
    call flat_segments64
    movabs rax, offset AP_BOOT          /* its first field: the stack top */
    mov rsp, [rax]
    xor ebp, ebp
    movabs rax, offset {ap_main}
    call rax
5:
    hlt
    jmp 5b

    .section .boot.data, "aw"
    .balign 4096
boot_pml4:
    .fill 4096, 1, 0
boot_pdpt_low:
    .fill 4096, 1, 0
boot_pdpt_high:
    .fill 4096, 1, 0
boot_pd:
    .fill 4 * 4096, 1, 0
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt
    .balign 16
    .fill 64, 1, 0
boot_stack32_top:
    "#,
    stack = sym BOOT_STACK,
    stack_size = const BOOT_STACK_SIZE,
    main = sym crate::kernel_main,
    ap_main = sym super::smp::ap_main,
);
